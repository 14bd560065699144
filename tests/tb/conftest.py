# Fixtures for lib/thingsboard on the unix port against tbsim on loopback.
import json
import os
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from tools.tbsim import TbSim

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "TB_DEVICE_TOKEN_0001"


@pytest.fixture
def sim(tmp_path):
    s = TbSim(str(tmp_path / "tbsim"), coap_port=0, http_port=0, log=False).start()
    yield s
    s.stop()


@pytest.fixture
def dev(sim):
    return sim.create_device("tb-test", token=TOKEN)


class Driver:
    # tests/tb/driver.py in the unix port: send() a command, get its reply; events queue up
    def __init__(self):
        env = dict(os.environ, MICROPYPATH="%s:.frozen" % (ROOT / "lib"))
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/micropython"), str(Path(__file__).parent / "driver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.replies = queue.Queue()
        self.events = queue.Queue()
        self.output = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith("=> "):
                self.replies.put(json.loads(line[3:]))
            elif line.startswith("!! "):
                self.events.put(json.loads(line[3:]))
        self.replies.put({"error": "exited", "message": "".join(self.output[-20:])})

    def send(self, op, timeout=30, **kw):
        self.proc.stdin.write(json.dumps(dict(kw, op=op)) + "\n")
        self.proc.stdin.flush()
        return self.replies.get(timeout=timeout)

    def ok(self, op, **kw):
        r = self.send(op, **kw)
        assert "ok" in r, r
        return r["ok"]

    def call(self, fn, *args, **kw):
        return self.send("call", fn=fn, args=args, kw=kw)

    def event(self, match, timeout=20):
        # the next event with every item of match; others seen meanwhile are returned too
        seen = []
        while True:
            e = self.events.get(timeout=timeout)
            seen.append(e)
            if all(e.get(k) == v for k, v in match.items()):
                return e, seen

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def device(sim, dev, driver):
    # a connected device (not yet observing)
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, token=dev["token"])
    return driver
