# mutants.py: does the suite notice when behaviour that matters changes? Each mutant below is
# a one-line change to the firmware, lib/ or tbsim with the deterministic tests that must catch
# it. `make mutants` applies them one at a time to a copy of the tracked files and runs those
# tests: a mutant whose tests still pass survived. A listed line that is no longer in its file
# (or is there twice) stops the run before anything else, so the list cannot rot silently.
#
#   .venv/bin/python tests/mutants.py [-j JOBS] [NAME ...]    (names: run only those)
#
# Exit status: 0 when every mutant was caught, 1 when one survived or its tests could not run
# (a renamed test is "not found" here too), 2 when the list no longer matches the code.
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ("tests/fuzz/", "tests/codec/test_fuzz.py")  # chance is not a catch
TIMEOUT = 600  # s for one mutant's tests; a hang counts as caught, and says so

Mutant = namedtuple("Mutant", "name path old new tests")

CLIENT = "tests/device/mp_client.py::"
TBDEV = "tests/device/mp_tbdevice.py::"
CODEC = "tests/codec/"
OTA = "tests/device/mp_ota.py::"
SPOOL = "tests/device/mp_spool.py::"
CONFIG = "tests/test_config.py::"
UPD = "tests/e2e/test_updates.py::"
TBSIM = "tests/tbsim/"

MUTANTS = [
    # --- the CoAP client: duplicates, backoff, Observe freshness, tokens, ACKs
    Mutant(
        "dup-by-mid-alone",
        "lib/coap/client.py",
        "if e >> 2 == mid and self._seen_crc[i] == crc:",
        "if e >> 2 == mid:",
        [CLIENT + "test_same_mid_different_message_is_not_a_duplicate"],
    ),
    Mutant(
        "dup-not-acked-again",
        "lib/coap/client.py",
        "self._control(e & 3, mid)  # the same answer again",
        "pass",
        [CLIENT + "test_duplicate_con_response_acked_again_and_delivered_once"],
    ),
    Mutant(
        "backoff-not-doubled",
        "lib/coap/client.py",
        "self._timeout <<= 1",
        "self._timeout += self._timeout >> 1",
        [CLIENT + "test_retransmission_schedule_doubles"],
    ),
    Mutant(
        "one-retransmission-more",
        "lib/coap/client.py",
        "if self._tries < c.max_retransmit:",
        "if self._tries <= c.max_retransmit:",
        [CLIENT + "test_retransmission_parameters_settable"],
    ),
    Mutant(
        "initial-timeout-not-random",
        "lib/coap/client.py",
        "return self.ack_timeout + (self._spread * random.getrandbits(10) >> 10)",
        "return self.ack_timeout",
        [CLIENT + "test_initial_timeout_randomised_within_factor"],
    ),
    Mutant(
        "observe-no-wraparound",
        "lib/coap/client.py",
        "if (last < seq and seq - last < 0x800000) or (last > seq and last - seq > 0x800000):",
        "if last < seq:",
        [CLIENT + "test_observe_freshness_wraps_and_ages"],
    ),
    Mutant(
        "observe-no-ageing",
        "lib/coap/client.py",
        "return ticks_diff(now, self.last) > 128000",
        "return False",
        [CLIENT + "test_observe_freshness_wraps_and_ages"],
    ),
    Mutant(
        "observe-stale-delivered",
        "lib/coap/client.py",
        "if ok and not self._fresh(seq, now):",
        "if False:",
        [CLIENT + "test_observe_in_order_and_stale_dropped"],
    ),
    Mutant(
        "response-matched-by-order",
        "lib/coap/client.py",
        "if v.token_is(a.token):",
        "if a.state != _IDLE:",
        [CLIENT + "test_response_matched_by_token_not_order"],
    ),
    Mutant(
        "con-response-not-acked",
        "lib/coap/client.py",
        "reply = (ACK if ex else RST) if mtype == CON else (0 if ex else RST)",
        "reply = (0 if ex else RST) if mtype == CON else (0 if ex else RST)",
        [CLIENT + "test_separate_con_response_without_ack"],
    ),
    Mutant(
        "non-notification-reset",
        "lib/coap/client.py",
        "reply = (ACK if ex else RST) if mtype == CON else (0 if ex else RST)",
        "reply = (ACK if ex else RST) if mtype == CON else RST",
        [CLIENT + "test_observe_non_notifications_not_acked"],
    ),
    Mutant(
        "rst-taken-as-ack",
        "lib/coap/client.py",
        'ex._fail(Reset("reset by peer"))',
        "ex._acked()",
        [CLIENT + "test_reset_of_our_request_raises"],
    ),
    # --- the codec
    Mutant(
        "codec-token-first-byte-only",
        "lib/coap/codec.py",
        "if buf[4 + i] != token[i]:",
        "if buf[4] != token[0]:",
        [CODEC + "test_vectors.py::test_token_is_compares_every_byte"],
    ),
    Mutant(
        "codec-ext-boundary",
        "lib/coap/codec.py",
        "    if v < 269:",
        "    if v <= 269:",
        [CODEC + "test_vectors.py"],
    ),
    Mutant(
        "codec-2-byte-delta",
        "lib/coap/codec.py",
        "delta = (buf[i] << 8 | buf[i + 1]) + 269",
        "delta = (buf[i] << 8 | buf[i + 1]) + 268",
        [CODEC + "test_vectors.py"],
    ),
    Mutant(
        "codec-empty-payload-after-marker",
        "lib/coap/codec.py",
        'if i + 1 >= n:\n                raise MessageError("payload marker',
        'if i + 1 > n:\n                raise MessageError("payload marker',
        [CODEC + "test_malformed.py"],
    ),
    # --- block-wise
    Mutant(
        "block2-next-number-counted",
        "lib/coap/block.py",
        "num = total >> (exp + 4)",
        "num += 1",
        [CLIENT + "test_block2_server_lowers_the_size_after_the_first_block"],
    ),
    Mutant(
        "block1-smaller-size-ignored",
        "lib/coap/block.py",
        "        if b is not None and (b & 7) < exp:",
        "        if False:",
        [CLIENT + "test_block1_server_asks_for_smaller_blocks"],
    ),
    # --- lib/thingsboard: RPC de-duplication and re-subscription
    Mutant(
        "attributes-end-no-wakeup",
        "lib/thingsboard/device.py",
        "            self._wake.set()\n            return\n        try:",
        "            return\n        try:",
        [
            TBDEV + "test_attributes_relation_ended_by_202_is_renewed_at_once",
            TBDEV + "test_attributes_relation_ended_by_an_error_is_renewed_at_once",
        ],
    ),
]


def check(mutants):
    # every listed line is in its file exactly once, and no mutant leans on a fuzz test
    problems = []
    for m in mutants:
        path = ROOT / m.path
        n = path.read_text().count(m.old) if path.exists() else 0
        if n != 1:
            where = "not found" if n == 0 else "found %d times" % n
            problems.append("%s: %s: %r %s" % (m.name, m.path, m.old, where))
        fuzz = [t for t in m.tests if t.startswith(FUZZ)]
        if fuzz or not m.tests:
            problems.append("%s: needs deterministic tests, not %s" % (m.name, fuzz or "none"))
    names = [m.name for m in mutants]
    problems += ["%s: listed twice" % n for n in sorted(set(names)) if names.count(n) > 1]
    return problems


def copy_repo(dest):
    # the tracked files, with the shared .venv and the prebuilt twin reachable
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src, dst = ROOT / f.decode(), dest / f.decode()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())
    if (ROOT / "build" / "twin").exists():
        (dest / "build").mkdir(exist_ok=True)
        (dest / "build" / "twin").symlink_to((ROOT / "build" / "twin").resolve())


def run_tests(repo, tests):
    # -> (pytest exit status or "timeout", seconds, output)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=TIMEOUT, env=env)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", str(e.stdout or "")
    return rc, time.monotonic() - t0, out


class Workers:
    # one copy of the repository per worker thread, so mutants can run side by side
    def __init__(self, base):
        self.base = base
        self.local = threading.local()
        self.lock = threading.Lock()
        self.n = 0

    def repo(self):
        if not hasattr(self.local, "repo"):
            with self.lock:
                self.n += 1
                d = self.base / ("copy%d" % self.n)
            copy_repo(d)
            self.local.repo = d
        return self.local.repo


def run_mutant(workers, m):
    repo = workers.repo()
    path = repo / m.path
    text = path.read_text()
    path.write_text(text.replace(m.old, m.new))
    try:
        rc, secs, out = run_tests(repo, m.tests)
    finally:
        path.write_text(text)
    if rc == 1:
        verdict = "caught"
    elif rc == "timeout":
        verdict = "caught (tests hung)"
    elif rc == 0:
        verdict = "SURVIVED"
    else:  # 2-5: interrupted, internal or usage error (a test id not found), nothing collected
        verdict = "ERROR (pytest exit %s)" % rc
    return verdict, secs, out


def main(argv=None):
    ap = argparse.ArgumentParser(description="apply each listed mutant, run its tests")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="mutants at a time (default 2)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the tests' output")
    ap.add_argument("names", nargs="*", help="run only these mutants")
    a = ap.parse_args(argv)
    problems = check(MUTANTS)
    if problems:
        print("the mutant list no longer matches the code:", *problems, sep="\n  ")
        return 2
    unknown = set(a.names) - {m.name for m in MUTANTS}
    if unknown:
        print("no such mutant:", ", ".join(sorted(unknown)))
        return 2
    todo = [m for m in MUTANTS if not a.names or m.name in a.names]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        workers = Workers(Path(tmp))
        # first the listed tests on the unchanged code: a test that fails anyway catches nothing
        tests = sorted({t for m in todo for t in m.tests})
        rc, secs, out = run_tests(workers.repo(), tests)
        if rc != 0:
            print(out[-4000:])
            print("the listed tests fail without any mutant (pytest exit %s)" % rc)
            return 1
        print("%d tests pass on the unchanged code (%.0f s)" % (len(tests), secs), flush=True)
        failed = []
        with ThreadPoolExecutor(max(1, a.jobs)) as pool:
            jobs = [(m, pool.submit(run_mutant, workers, m)) for m in todo]
            for m, job in jobs:
                verdict, secs, out = job.result()
                print("%-20s %-28s %5.0f s  %s" % (verdict, m.name, secs, m.path), flush=True)
                if not verdict.startswith("caught"):
                    failed.append(m.name)
                    if a.verbose or verdict.startswith("ERROR"):
                        print(out[-3000:])
    caught = len(todo) - len(failed)
    wall = time.monotonic() - t0
    print(
        "mutation score: %d of %d caught (%.0f %%) in %dm%02ds"
        % (caught, len(todo), 100.0 * caught / len(todo), wall // 60, wall % 60)
    )
    if failed:
        print("not caught:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
