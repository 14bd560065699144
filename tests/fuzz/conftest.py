# Fuzzing of everything the device parses from the server. Hypothesis runs here under CPython;
# device code that needs MicroPython runs in one persistent unix-port process (mp_fuzz.py).
# FUZZ_SCALE=N multiplies every property test's example count (each example is a batch of
# inputs); `make fuzz` uses it for the long run. The inputs each target took are totalled at
# the end of the session.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE.parent, HERE.parent.parent / "lib", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fuzzenv import COUNTS  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        total = sum(COUNTS.values())
        parts = ", ".join("%s %d" % kv for kv in sorted(COUNTS.items()))
        terminalreporter.write_line("fuzz inputs: %d (%s)" % (total, parts))
