# Helpers for the tools tests (a module of its own: no test imports "conftest").
import json
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
TOKEN = "TOOLS_DEVICE_TOKEN_01"


class UnixBoard:
    """The unix port on a pty: `port` is the path mpremote (and our tools) open; `root` is its
    filesystem (its current directory)."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = str(self.root.parent / (self.root.name + ".tty"))
        env = dict(os.environ, MICROPYPATH="lib:.frozen")  # sys.path as on an ESP32: '', lib
        self.proc = subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.port,
             "EXEC:%s,pty,raw,echo=0,stderr" % MICROPYTHON],
            cwd=self.root, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port):
            assert time.monotonic() < deadline, "socat made no pty"
            assert self.proc.poll() is None, "socat ended"
            time.sleep(0.01)

    def write_json(self, name, value):
        tmp = self.root / (name + ".tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, self.root / name)

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
