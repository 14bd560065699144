# twin_heap.py: the smallest heap each heap-gate scenario fits in on the ESP32 twin
# (tools/twin.py: MicroPython 1.28.0's unix port built 32-bit, lib/ and firmware/ as .mpy from
# its mpy-cross), against the targets. -X heapsize is bisected in 1K steps over the gates' own
# scenarios and checks (tests/twin/scenarios.py): a probe passes when the job is done and
# checked and the device printed no MemoryError or traceback. Every probe is a fresh tbsim and
# device. Fragmentation makes the boundary a little ragged: the bisect takes larger heaps to
# pass, so a figure can be 1K or 2K off a run's luck. Then the heap each import retains on the
# twin (bench/fw_device.py imports).
# Usage: .venv/bin/python bench/twin_heap.py [--quick] [--verbose] [--runs N]
#            [--only idle,download,coaps,protobuf,provisioning,bundle,sleep,imports]
# --runs N bisects each scenario N times and reports the largest figure with the spread: a
# change of a K or two is within one run's luck.
import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.twin import scenarios as S  # noqa: E402
from tools import simdevice, twin  # noqa: E402

LO, HI = 32, 256  # K: the bisect's bounds


def cases(quick):
    # (name, what, target K or None, the board's heap, payload, run(rig, heap_k))
    n, r, size = (200, 80, 300000) if quick else (S.CYCLES, S.RPCS, S.IMAGE)
    rpcs = "%d telemetry cycles, %d RPCs, %d telemetry_interval changes" % (n, r, r // 10)
    return [
        ("idle", "idle: " + rpcs, 80, S.HEAP_K, "json", lambda g, k: S.cycles(g, k, n, r)),
        (
            "download",
            "firmware download of %d bytes, to UPDATED" % size,
            96,
            S.HEAP_K,
            "json",
            lambda g, k: S.firmware_update(g, k, size),
        ),
        (
            "coaps",
            "coaps: telemetry, firmware download of %d bytes" % size,
            96,
            S.HEAP_COAPS_K,
            "json",
            lambda g, k: S.firmware_update(g, k, size, coaps=True),
        ),
        (
            "protobuf",
            "protobuf: " + rpcs,
            96,
            S.HEAP_K,
            "protobuf",
            lambda g, k: S.cycles(g, k, n, r),
        ),
        ("provisioning", "first boot, provisioning", None, S.HEAP_K, "json", S.provisioning),
        ("bundle", "software bundle (.mpy), to UPDATED", None, S.HEAP_K, "json", S.bundle_update),
        (
            "sleep",
            "power mode sleep: %d wakes, each serving an RPC sent while asleep" % S.WAKES,
            None,
            S.HEAP_K,
            "json",
            lambda g, k: S.sleep_wakes(g, k, S.WAKES),
        ),
    ]


@contextmanager
def _rig(payload):
    # a scenario's rig in a folder of its own, both gone after it
    with tempfile.TemporaryDirectory(prefix="twin_heap_") as work:
        rig = S.Rig(work, payload)
        try:
            yield rig
        finally:
            rig.close()


def probe(payload, run, heap_k):
    """None when the scenario passes with heap_k KB, else why not (one line)."""
    with _rig(payload) as rig:
        try:
            run(rig, heap_k)
            return None
        except AssertionError as e:
            return str(e).strip().splitlines()[0][:120]


def names(payload, run):
    """The most names interned in one process of the scenario (tools/simboot.py counts them as
    each ends: a reset, a deep sleep, the end), at the board's heap."""
    os.environ["SIMBOOT_NAMES"] = "1"
    try:
        with _rig(payload) as rig:
            run(rig, S.HEAP_K)
            dev = rig.dev
            # the firmware still running ends as Ctrl-C would end it, and simboot counts its
            # names (none runs while the supervisor waits out a deep sleep)
            pid = dev.proc.pid
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                children = [int(c) for c in f.read().split()]
            for child in children:
                try:
                    os.kill(child, signal.SIGINT)
                except ProcessLookupError:  # it ended meanwhile (a reset, a deep sleep)
                    pass
            if children:
                dev.wait_exit(15)
            counts = [int(x.split("n_qstr=")[1].split(",")[0]) for x in dev.grep("n_qstr=")]
    finally:
        del os.environ["SIMBOOT_NAMES"]
    return max(counts)


def smallest(payload, run, verbose):
    """-> (smallest passing heap K or None, largest failing K, why it failed)"""
    tried = {}

    def ok(k):
        tried[k] = probe(payload, run, k)
        if verbose:
            print("    %dK: %s" % (k, tried[k] or "ok"), flush=True)
        return tried[k] is None

    if not ok(HI):
        return None, HI, tried[HI]
    if ok(LO):
        return LO, None, None
    lo, hi = LO, HI
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, lo, tried[lo]


def imports():
    # fw_device's imports mode on the twin, the firmware as .mpy: (rows, later rows, figures)
    with tempfile.TemporaryDirectory() as work:  # the driver is frozen into the twin
        p = simdevice.on_twin(Path(work), "from fw_imports import imports\nimports()\n")
    if p.returncode:
        raise SystemExit("fw_device imports failed:\n" + p.stdout + p.stderr)
    rows, later, figures = [], [], {}
    for line in p.stdout.splitlines():
        f = line.split()
        if f[0] in ("import", "later"):
            (rows if f[0] == "import" else later).append((f[1], int(f[2]), ",".join(f[3:])))
        else:
            figures[f[0]] = int(f[1])
    return rows, later, figures


def main():
    ap = argparse.ArgumentParser(description="smallest heap per scenario on the ESP32 twin")
    ap.add_argument("--quick", action="store_true", help="fewer cycles and RPCs, smaller image")
    ap.add_argument("--only", help="comma-separated: the scenario names, imports")
    ap.add_argument("--verbose", action="store_true", help="print each bisect probe")
    ap.add_argument("--runs", type=int, default=1, help="bisects per scenario (default 1)")
    ap.add_argument("--names", action="store_true", help="also the names each one interns")
    a = ap.parse_args()
    t0 = time.monotonic()
    S.prepare()
    only = set(a.only.split(",")) if a.only else None
    print(
        "ESP32 twin heap (%s): MicroPython %s unix port built 32-bit, lib/ and firmware/ as .mpy;"
        " smallest -X heapsize (1K steps) in which each heap-gate scenario passes"
        % ("quick" if a.quick else "full", twin.VERSION)
    )
    flags = (" --quick" if a.quick else "") + (" --runs %d" % a.runs if a.runs > 1 else "")
    flags += " --names" if a.names else ""
    print("command: .venv/bin/python bench/twin_heap.py%s" % flags)
    print()
    print("| scenario | smallest heap | target | the board's heap |")
    print("|---|---|---|---|")
    notes = []
    for name, what, target, gate, payload, run in cases(a.quick):
        if only and name not in only:
            continue
        t = time.monotonic()
        found = [smallest(payload, run, a.verbose) for _ in range(a.runs)]
        k, fail, why = max(found, key=lambda f: HI + 1 if f[0] is None else f[0])
        if k is None:
            shown, aim, at_gate = "> %dK" % HI, "", "fails"
        else:
            ks = [f[0] for f in found]
            shown = "%dK" % k if a.runs == 1 else "%dK (%d-%dK)" % (k, min(ks), k)
            aim = (
                ""
                if target is None
                else "; meets it"
                if k <= target
                else "; %dK over" % (k - target)
            )
            at_gate = "%dK to spare" % (gate - k) if k <= gate else "%dK short" % (k - gate)
        target_s = "-" if target is None else "≤ %dK%s" % (target, aim)
        print("| %s | %s | %s | %dK: %s |" % (what, shown, target_s, gate, at_gate), flush=True)
        if fail is not None:
            notes.append("%s at %dK: %s [%.0f s]" % (name, fail, why, time.monotonic() - t))
    print()
    for note in notes:
        print(note)
    if a.names:
        print()
        print("names interned at most (the first five pools hold 620; the 621st takes 4.5 KB):")
        for name, _, _, _, payload, run in cases(a.quick):
            if not only or name in only:
                print("  %-13s %d" % (name, names(payload, run)), flush=True)
    if not only or "imports" in only:
        rows, later, fig = imports()
        print()
        print(
            "heap each import retains on the twin (.mpy; gc.collect(), gc.mem_alloc() delta, B):"
        )
        for name, d, new in rows:
            print("  %6d  %-26s %s" % (d, name, new))
        print(
            "  %6d  all; in use after them: %d B"
            % (fig["import_total"], fig["heap_after_imports"])
        )
        print("loaded only for a job, on top of those:")
        for name, d, new in later:
            print("  %6d  %-26s %s" % (d, name, new))
    print("total %.0f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
