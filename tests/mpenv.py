# Where the MicroPython unix port is and how to run it on the repository's code (a module of
# its own, so no test imports "conftest", whose name several folders share).
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


def micropython_env(*paths):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in paths] + [str(ROOT / "lib"), ".frozen"])
    return env
