# twin_frozen.py: what freezing the firmware into the image saves, on the ESP32 twin
# (tools/twin.py: MicroPython 1.28's unix port built 32-bit, as the ESP32's heap is laid out).
# bench/fw_run.py's and bench/ota_run.py's measurements, each run twice: with lib/ and firmware/
# as .mpy files loaded into the heap (what `make deploy` ships, compiled by the twin's
# mpy-cross), and frozen into the image (python -m tools.twin --frozen, firmware/manifest.py),
# where MicroPython's path is only .frozen. The benchmark drivers are .mpy files in both.
#   1. heap in use once the firmware is imported (fw_device imports: gc.collect(), mem_alloc());
#   2. minimum heap of the idle firmware: fw_run's bisect of -X heapsize (1K steps) over N
#      telemetry cycles while RPCs (setGpio / getGpioStatus) and a shared attribute arrive;
#   3. minimum heap of a firmware download: ota_run's bisect (1K steps) of download, verify and
#      install (into the partition simulation, whose writes take no more heap than the ESP32's).
# Usage: .venv/bin/python bench/twin_frozen.py [--quick] [--only imports,idle,ota]
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fw_run import ROOT, Bench  # noqa: E402
from ota_run import IMAGE, WINDOW, OtaBench, _ok_out  # noqa: E402

from tools import simdevice, twin  # noqa: E402

DRIVERS = ("fw_device", "fw_imports", "ota_device")  # the bench/ modules the runs load
KINDS = ("mpy", "frozen")


class TwinBench(OtaBench):
    def __init__(self, work):
        super().__init__(work)
        drivers = self.work / "drivers"
        drivers.mkdir()
        for name in DRIVERS:
            src, dst = ROOT / "bench" / (name + ".py"), drivers / (name + ".mpy")
            subprocess.run([str(twin.MPY_CROSS), "-o", str(dst), str(src)], check=True)
        self.exes = {"mpy": twin.build(), "frozen": twin.build(frozen=True)}
        mpy = simdevice.deployed()
        self.paths = {
            "mpy": "%s:%s:%s:.frozen" % (drivers, mpy, mpy / "lib"),
            "frozen": "%s:.frozen" % drivers,
        }


def bisect(probe):
    # probe(kind) -> (K, why the largest failing heap failed, probes), for each kind
    got = {}
    for kind in KINDS:
        t0 = time.monotonic()
        k, why, probes = probe(kind)
        got[kind] = k
        print(
            "  %-6s %3dK; %dK fails: %s [%d probes, %.0f s]"
            % (kind, k, k - 1, why, len(probes), time.monotonic() - t0),
            flush=True,
        )
    return got


def idle(b, cycles, rpcs, gap):
    def probe(kind):
        k, probes, why = Bench.min_heap(b, kind, cycles, rpcs, gap, 8, 256)
        return k, why, probes

    return bisect(probe)


def ota(b, size):
    def probe(kind):
        def run(k):
            return _ok_out(b.ota(size, WINDOW, heap_k=k, limit=180, kind=kind))

        return b.min_heap(run, 8, 256)

    return bisect(probe)


def saved(got):
    print("  frozen saves %dK" % (got["mpy"] - got["frozen"]))


def main():
    ap = argparse.ArgumentParser(description="the firmware as .mpy and frozen, on the twin")
    ap.add_argument("--quick", action="store_true", help="fewer cycles and RPCs, 200 KB image")
    ap.add_argument("--only", default="imports,idle,ota")
    a = ap.parse_args()
    only = set(a.only.split(","))
    cycles, rpcs, gap = (200, 8, 0.1) if a.quick else (1000, 20, 0.2)
    size = 200000 if a.quick else IMAGE
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="twin_frozen_")
    b = TwinBench(work)
    try:
        print(
            "the firmware as .mpy in the heap and frozen in the image, on the ESP32 twin"
            " (MicroPython %s, 32-bit), against tbsim on loopback (%s)"
            % (twin.VERSION, "quick" if a.quick else "full")
        )
        if "imports" in only:
            print("heap in use once the firmware is imported (gc.collect(), gc.mem_alloc()):")
            for kind in KINDS:
                _, total, after = b.imports(kind)
                print("  %-6s %6d B (%d B retained by the imports)" % (kind, after, total))
        if "idle" in only:
            print(
                "minimum heap, idle firmware (-X heapsize bisect, 1K steps): %d telemetry cycles,"
                " %d RPCs, a shared attribute change:" % (cycles, rpcs)
            )
            saved(idle(b, cycles, rpcs, gap))
        if "ota" in only:
            print(
                "minimum heap, firmware download (-X heapsize bisect, 1K steps): a %d-byte"
                " image, window %d, downloaded, verified and installed:" % (size, WINDOW)
            )
            saved(ota(b, size))
        print("total %.0f s" % (time.monotonic() - t_start))
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
