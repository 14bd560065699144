# ota_run.py: OTA benchmarks for the targets of issue 5, the real firmware on the MicroPython
# unix port (bench/ota_device.py boots firmware.app.main) downloading a package from an
# in-process tbsim on loopback into the simulated ota_1 (firmware/board/partition_sim.py), with
# its telemetry (1 s) and both observations running as usual. Each run is a new device that
# boots, reports, gets the package assigned, downloads, verifies and resets into it (the
# process ends with the board's reset status, 3).
#   1. throughput: a 1,500,000-byte image (tests/device/otaimage.py) with 0, 20 and 50 ms added
#      round-trip delay, split evenly over both directions (tbsim's fault knobs delay each
#      datagram: "in" device->server and "out" server->device get half each), and `window`
#      1, 4 (the default), 8 and 16 chunk requests in flight; chunks of 1024 bytes. Timed from
#      tbsim's receipt of the DOWNLOADING report to its receipt of DOWNLOADED (server-side
#      timestamps of the fw_state telemetry, so one extra round trip, the DOWNLOADING report's
#      acknowledgement, is inside the time). tbsim answers a chunk as ThingsBoard does (empty
#      ACK, then a separate CON response the device acknowledges): 2 datagrams from the device
#      per chunk, plus 2 per telemetry message (1 a second); more would be retransmissions.
#   2. heap during an OTA (the default window, no added delay, the same image), .py and .mpy:
#      a. what a download's modules keep: gc.collect(), gc.mem_alloc() before and after
#         importing firmware.download and ota.writer (code on this port; frozen on an ESP32);
#      b. sampled: a task beside the firmware calls gc.collect() then gc.mem_alloc() every
#         SAMPLE_MS; the largest value while idle (telemetry and observations only, from
#         WARM_MS after start until the package is assigned IDLE_S after the boot report)
#         against the largest during the download (from the import of firmware.download to the
#         reset): the aim's figure. It is what is live between two steps of the firmware's
#         tasks; a transient inside one step (a received datagram, a chunk's bytes) is missed;
#      c. minimum heap: bisect -X heapsize (1K steps), as bench/fw_run.py does, for the idle
#         firmware (passes: a telemetry message a second stored, no MemoryError) and for one
#         that downloads, verifies and installs the image (passes: exit status 3, VERIFIED
#         stored, no MemoryError): transients and fragmentation included, but the idle figure
#         is set by boot (loading the config module, released after it), so the difference is
#         what the OTA needs beyond boot's peak, less than beyond the running idle firmware,
#         and 1K steps of -X heapsize are coarse against fragmentation. Run twice: with the
#         partition simulation as it is, and with its writes allocation-free (ota_device's
#         "plain"), as the ESP32's esp32.Partition is; the simulation's NOR-flash checks
#         allocate two or three 4 KB buffers per 4 KB block written.
#      Each device's partitions are flashed before it boots (as esptool leaves a board), so the
#      simulation's first-use flash is not in the firmware's figures.
# Usage: .venv/bin/python bench/ota_run.py [--quick] [--only throughput,heap]
#        [--windows 1,4,6,8,16] [--delays 0,20,50]     (6: the default window)
import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fw_run import BAD, Bench  # noqa: E402

from firmware import config  # noqa: E402
from firmware.board import partition_sim  # noqa: E402
from tests.device.otaimage import image  # noqa: E402

IMAGE = 1500000  # fits the simulation's 1,572,864-byte ota_1
CHUNK = 1024
WINDOW = config.defaults()["ota"]["window"]
SAMPLE_MS = 20
WARM_MS = 3000
IDLE_S = 6


class OtaBench(Bench):
    def __init__(self, work):
        super().__init__(work)
        self.packages = {}

    def new_device(self, interval_s=1, **sections):
        did, root = super().new_device(interval_s, **sections)
        # flashed before power-on, as esptool leaves a board: the simulation's first-use flash
        # (4 KB buffers) is not the firmware's and would land in its heap figures
        partition_sim.flash(str(root))
        return did, root

    def package(self, size):
        if size not in self.packages:
            self.packages[size] = self.sim.add_ota("coapboard", "0.2.%d" % size, image(size))
        return self.packages[size]

    def delay(self, rtt_ms):
        half = rtt_ms / 2000
        self.sim.call(self.sim.faults.configure, {"in": {"delay": half}, "out": {"delay": half}})

    def datagrams_in(self):
        return self.sim.call(self.sim.faults.snapshot)["in"]["counters"]["datagrams"]

    def rows(self, did, key):
        # [(ts ms, value)] of a telemetry key as tbsim stored them
        got = self.sim.call(
            lambda: self.sim.store.db.execute(
                "SELECT ts, value FROM telemetry WHERE device_id=? AND key=? ORDER BY rowid",
                (did, key),
            ).fetchall()
        )
        return [(ts, json.loads(v)) for ts, v in got]

    def ota(
        self, size, window, sample_ms=0, heap_k=None, idle_s=0, limit=300, kind="py", flash="sim"
    ):
        """One device: boot, (idle_s of idle,) assign the package, wait for the reset.
        -> (ok, {fw_state: ts}, values printed, output, device datagrams meanwhile)"""
        did, root = self.new_device(ota={"window": window, "chunk_size": CHUNK})
        args = ["run", root, sample_ms, WARM_MS, flash]
        proc = self.start(root, args, heap_k, kind, driver="ota_device")
        lines = _collect(proc)
        try:
            t0 = time.monotonic()
            while not self.rows(did, "current_fw_title"):  # the boot report
                if proc.poll() is not None or time.monotonic() - t0 > 30 or _bad(lines):
                    return False, {}, {}, "".join(lines), 0
                time.sleep(0.05)
            if idle_s:
                time.sleep(idle_s)  # the idle firmware's samples
            n0 = self.datagrams_in()
            self.sim.assign_ota(did, self.package(size))
            while proc.poll() is None and time.monotonic() - t0 < limit and not _bad(lines):
                time.sleep(0.05)
            n = self.datagrams_in() - n0
        finally:
            if proc.poll() is None:
                time.sleep(0.2)  # let a MemoryError's traceback reach the output
                proc.kill()
            proc.wait()
            shutil.rmtree(root, ignore_errors=True)  # 3 MB of partition files each
        out = "".join(lines)
        ts = {s: t for t, s in self.rows(did, "fw_state")}
        vals = dict(ln.split(None, 1) for ln in lines if ln[:1].islower() and " " in ln)
        vals = {k: v.strip() for k, v in vals.items()}
        ok = proc.returncode == 3 and "VERIFIED" in ts and not _bad(lines)
        return ok, ts, vals, out, n

    def idle(self, seconds, heap_k, kind="py"):
        """The firmware without an OTA for `seconds`: (ok, output)."""
        did, root = self.new_device()
        proc = self.start(root, ["run", root, 0, 0, "sim"], heap_k, kind, driver="ota_device")
        lines = _collect(proc)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < seconds and not _bad(lines):
            time.sleep(0.05)
        if proc.poll() is None:
            time.sleep(0.2)
            proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        sent = len(self.rows(did, "temperature"))
        ok = proc.returncode == -9 and not _bad(lines) and sent >= seconds - 2
        return ok, "".join(lines) + "\n(%d telemetry messages stored)" % sent

    def min_heap(self, probe, lo, hi):
        """Smallest K for which probe(K) passes, 1K steps: (K, why K-1 failed, probes)."""
        probes = []
        ok, out = probe(hi)
        probes.append((hi, ok))
        if not ok:
            raise SystemExit("fails even at %dK:\n%s" % (hi, out[-3000:]))
        why = ""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, out = probe(mid)
            probes.append((mid, ok))
            if ok:
                hi = mid
            else:
                lo, why = mid, _why(out)
        return hi, why, probes


def _collect(proc):
    lines = []

    def reader():
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=reader, daemon=True).start()
    return lines


def _bad(lines):
    return any(b in ln for ln in lines[-20:] for b in BAD)


def _why(out):
    for line in out.splitlines()[::-1]:
        if any(b in line for b in BAD):
            return line.strip()[:110]
    return out.strip().splitlines()[-1][:110] if out.strip() else "(no output)"


def throughput(b, size, windows, delays):
    print(
        "download throughput, %d-byte image in %d-byte chunks, tbsim on loopback; added"
        " round-trip delay split evenly over both directions; DOWNLOADING -> DOWNLOADED as"
        " tbsim stamped them:" % (size, CHUNK)
    )
    chunks = (size + CHUNK - 1) // CHUNK
    results = {}
    for rtt in delays:
        for w in windows:
            b.delay(rtt)
            t0 = time.monotonic()
            ok, ts, _, out, n = b.ota(size, w, limit=60 + chunks * (rtt + 5) / 1000 / w * 2)
            b.delay(0)
            if not ok or "DOWNLOADED" not in ts:
                print("  %3d ms, window %2d: FAILED\n%s" % (rtt, w, out[-3000:]))
                continue
            s = (ts["DOWNLOADED"] - ts["DOWNLOADING"]) / 1000
            kbs = size / 1024 / s
            results[rtt, w] = kbs
            base = results.get((rtt, windows[0]))
            print(
                "  %3d ms RTT, window %2d: %6.1f s  %7.1f KB/s  %5.2fx window %d;"
                " %.2f datagrams from the device per chunk, telemetry's included [%.0f s]"
                % (rtt, w, s, kbs, kbs / base, windows[0], n / chunks, time.monotonic() - t0)
            )
    return results


def heap(b, size, kinds, idle_s):
    print(
        "heap, MicroPython unix port (64-bit: 8-byte pointers, 32-byte GC blocks), window %d"
        " (the default), no added delay, %d-byte image:" % (WINDOW, size)
    )
    for kind in kinds:
        heap_of(b, size, kind, idle_s)


def heap_of(b, size, kind, idle_s):
    rows, total, _ = b.imports(kind, driver="ota_device")
    print(
        "  .%s: retained by the modules a download imports (gc.collect(), gc.mem_alloc()"
        " delta): %d B (%s)" % (kind, total, ", ".join("%s %d" % (n, d) for n, d, _ in rows))
    )
    t0 = time.monotonic()
    ok, ts, v, out, _ = b.ota(size, WINDOW, SAMPLE_MS, idle_s=IDLE_S, kind=kind)
    if not ok:
        raise SystemExit("sampled OTA run failed:\n" + out[-3000:])
    idle, peak = int(v["idle_max"]), int(v["ota_max"])
    print(
        "  .%s, sampled every %d ms (gc.collect() then gc.mem_alloc()): idle firmware max"
        " %d B (%s samples), during the OTA max %d B (%s samples): %+d B [%.0f s]"
        % (
            kind,
            SAMPLE_MS,
            idle,
            v["idle_n"],
            peak,
            v["ota_n"],
            peak - idle,
            time.monotonic() - t0,
        )
    )
    t0 = time.monotonic()
    k_idle, why, _ = b.min_heap(lambda k: b.idle(idle_s, k, kind), 32, 384)
    print(
        "  .%s, minimum heap (-X heapsize bisect, 1K steps): idle firmware (%d s of"
        " telemetry every 1 s and observations) %dK; %dK fails: %s [%.0f s]"
        % (kind, idle_s, k_idle, k_idle - 1, why, time.monotonic() - t0)
    )
    for flash, what in (
        ("sim", "partition simulation as it is"),
        ("plain", "partition writes allocation-free, as esp32.Partition's"),
    ):
        t0 = time.monotonic()
        k_ota, why, _ = b.min_heap(
            lambda k, f=flash: _ok_out(
                b.ota(size, WINDOW, heap_k=k, limit=120, kind=kind, flash=f)
            ),
            32,
            512,
        )
        print(
            "    download + verify + install, %s: %dK (%+dK above idle); %dK fails: %s"
            " [%.0f s]" % (what, k_ota, k_ota - k_idle, k_ota - 1, why, time.monotonic() - t0)
        )


def _ok_out(r):
    return r[0], r[3]


def main():
    ap = argparse.ArgumentParser(description="OTA benchmarks for issue 5")
    ap.add_argument("--quick", action="store_true", help="200 KB image; windows 1, default")
    ap.add_argument("--only", default="throughput,heap")
    ap.add_argument("--windows", help="comma-separated (default 1,4,<the default>,8,16)")
    ap.add_argument("--delays", help="added round trip in ms, comma-separated (default 0,20,50)")
    a = ap.parse_args()
    only = set(a.only.split(","))
    size = 200000 if a.quick else IMAGE
    full = sorted({1, 4, WINDOW, 8, 16})
    windows = [int(x) for x in a.windows.split(",")] if a.windows else full
    if a.quick and not a.windows:
        windows = [1, WINDOW]
    delays = [int(x) for x in (a.delays or "0,20,50").split(",")]
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="ota_bench_")
    b = OtaBench(work)
    try:
        if "heap" in only:
            b.build_mpy()
        print(
            "OTA benchmarks (%s): MicroPython unix port, 64-bit, against tbsim on loopback"
            % ("quick" if a.quick else "full")
        )
        if "throughput" in only:
            throughput(b, size, windows, delays)
        if "heap" in only:
            heap(b, size, ("py", "mpy"), 6 if a.quick else 10)
        print("total %.0f s" % (time.monotonic() - t_start))
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
