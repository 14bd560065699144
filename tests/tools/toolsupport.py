# Helpers for the tools tests (a module of its own: no test imports "conftest").
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import until, write_json
from tests.mpenv import MICROPYTHON, micropython_env
from tests.mpenv import ROOT as REPO

TOKEN = "TOOLS_DEVICE_TOKEN_01"
HERE = Path(__file__).resolve().parent


class UnixBoard:
    """The unix port on a pty, as an ESP32 runs MicroPython (tests/tools/ptyboard.py): boot.py
    on every soft reset (Ctrl-D, mpremote entering the raw REPL), main.py too when the reset
    came from the friendly REPL. `port` is the path mpremote (and our tools) open; `root` is
    its filesystem (its current directory). With boot=True power on runs boot.py and main.py,
    else the board starts at the REPL (a board whose firmware stopped). With restarts=True it
    comes back after a reset as an ESP32 does (board.reset() ends the unix port with status
    3), with reset_cause hard_reset, booting boot.py and main.py; without, it stays off."""

    def __init__(self, root, restarts=False, boot=False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = str(self.root.parent / (self.root.name + ".tty"))
        env = dict(os.environ, MICROPYPATH="lib:.frozen")  # sys.path as on an ESP32: '', lib
        status = self.root.parent / (self.root.name + ".status")
        run = "%s %s %s %d %d %s" % (sys.executable, HERE / "ptyboard.py", MICROPYTHON,
                                     restarts, boot, status)  # fmt: skip
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.port, "EXEC:%s" % run],
            cwd=self.root, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        until(lambda: os.path.exists(self.port) or self.proc.poll() is not None, 10, "a pty")
        assert self.proc.poll() is None, "socat ended"

    def write_json(self, name, value):
        write_json(self.root / name, value)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def device_config(port, token=TOKEN, **changes):
    """A small valid config for a simulated board against tbsim on port."""
    cfg = {
        "wifi": {"ssid": "workshop", "password": "correct-horse-battery"},
        "server": {"host": "127.0.0.1", "port": port},
        "token": token,
        "telemetry": {"interval_s": 1},
        "sensors": [{"type": "chip_temp", "key": "chip_temp"}],
    }
    cfg.update(changes)
    return cfg


def doctor(root, *first):
    """The lines `import firmware.doctor` prints on the unix port in a device folder; first:
    folders whose modules win over MicroPython's own (another release's ssl)."""
    env = dict(micropython_env(*first, REPO), COAPBOARD_ROOT=str(root))
    p = subprocess.run(
        [str(MICROPYTHON), "-c", "import firmware.doctor"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.splitlines()
