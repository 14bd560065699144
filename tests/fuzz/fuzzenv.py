# fuzzenv.py: example counts, input counting and the MicroPython fuzz process for tests/fuzz.
import json
import os
import subprocess
from collections import Counter

from hypothesis import HealthCheck, settings
from mpenv import MICROPYTHON, ROOT, micropython_env

COUNTS = Counter()  # target -> inputs run this session


def examples(default):
    # FUZZ_SCALE multiplies every test's example count (the long run of `make fuzz`)
    return int(default * float(os.environ.get("FUZZ_SCALE", "1")))


def fuzz(default):
    return settings(
        max_examples=examples(default),
        deadline=None,
        database=None,  # no example database in the checkout
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


class MpFuzz:
    """tests/fuzz/mp_fuzz.py in the unix port: run(target, inputs) -> one result per input."""

    def __init__(self, root):
        self.proc = subprocess.Popen(
            [str(MICROPYTHON), str(ROOT / "tests/fuzz/mp_fuzz.py"), str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",  # the firmware logs server text, which need not be UTF-8
            env=micropython_env(ROOT / "tests/device", ROOT),
        )
        self.noise = []
        assert self._reply() == {"ready": True}

    def _reply(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(
                    "the MicroPython process ended:\n" + "".join(self.noise[-30:])
                )
            if line.startswith("@@"):
                return json.loads(line[2:])
            self.noise.append(line)
            del self.noise[:-100]

    def _send(self, cmd):
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            status = self.proc.wait()
            noise = "".join(self.noise[-30:])
            msg = "the MicroPython process ended (%d):\n%s" % (status, noise)
            raise AssertionError(msg) from None

    def run(self, target, inputs):
        self._send({"t": target, "in": inputs})
        out = self._reply()["out"]
        assert len(out) == len(inputs)
        COUNTS[target] += len(inputs)
        return out

    def storm(self, target, inputs, amp):
        """Each input mutated amp times inside the device process, checked there against the
        invariants that need no model: -> (inputs run, [violations, at most 5])."""
        self._send({"t": target, "in": inputs, "amp": amp})
        got = self._reply()
        COUNTS[target + " (mutated)"] += got["n"]
        return got["n"], got["bad"]

    def close(self):
        if self.proc.poll() is not None:
            return
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
