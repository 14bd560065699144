"""Soak: the firmware (unix port, simulated board, bench/soak_device.py as its main) against
tbsim for CYCLES telemetry cycles of 1 s with seeded loss, duplication and reordering both ways,
and every EVERY cycles, in turn, a network outage (network.json {"up": false} and everything
dropped) or a tbsim restart on the same port and data. An RPC goes out every 5 cycles. Then the
faults stop, the spool drains, the device is stopped and its leftovers counted.

A sim sensor counts 0, 1, 2 ... one step per message, so what tbsim stored shows what was lost
or stored twice. Reports: messages produced, stored, received twice by the server (re-sent
after a lost reply, stored once), stored twice, still spooled, dropped by a full spool, lost;
re-registrations of the observations; RPCs answered; heap (gc.mem_alloc after a collection) at
start and end. Exit status 1 if anything was lost, stored twice or the firmware crashed.

Usage: python -m tools.soak --cycles N [--every N] [--seed N] [--loss P] [--json FILE]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from firmware.spool import Spool
from tools.run import sample_config
from tools.tbsim import RpcTimeout, TbSim

REPO = Path(__file__).resolve().parent.parent
TOKEN = "SOAK_DEVICE_TOKEN_0001"
SEQ = "seq"
CHECKED_RESTART = "simdevice: soft reset, restart 1"


class Server:
    """tbsim on a fixed port and folder, restartable, instrumented: each telemetry write and
    each observe registration is recorded (tbsim's store keeps one row per key and ts, so a
    message the device sent twice would not show there)."""

    def __init__(self, data, faults):
        self.data = data
        self.faults = faults
        self.port = 0
        self.seqs = []  # SEQ values in the order tbsim took them, repeats included
        self.subscriptions = 0
        self.restarts = 0
        self.sim = None
        self.start()

    def start(self):
        self.sim = TbSim(str(self.data), coap_port=self.port, http_port=0, log=False).start()
        self.port = self.sim.coap_port
        self.sim.faults.configure(self.faults)
        store, registry = self.sim.store, self.sim.registry
        add, subscribe = store.add_telemetry, registry.subscribe

        def add_telemetry(did, entries):
            for _, values in entries:
                if SEQ in values:
                    self.seqs.append(values[SEQ])
            return add(did, entries)

        def count_subscribe(*a, **kw):
            self.subscriptions += 1
            return subscribe(*a, **kw)

        store.add_telemetry = add_telemetry
        registry.subscribe = count_subscribe

    def restart(self):
        self.sim.stop()
        self.restarts += 1
        self.start()

    def configure(self, faults):
        self.faults = faults
        self.sim.faults.configure(faults)

    def stored(self, did):
        got = self.sim.call(
            lambda: self.sim.store.db.execute(
                "SELECT ts, value FROM telemetry WHERE device_id=? AND key=?", (did, SEQ)
            ).fetchall()
        )
        return [json.loads(v) for _, v in got]

    def dropped_reported(self, did):
        got = self.sim.call(
            lambda: self.sim.store.db.execute(
                "SELECT value FROM telemetry WHERE device_id=? AND key='spool_dropped'", (did,)
            ).fetchall()
        )
        return sum(json.loads(v) for (v,) in got)


class Device:
    """tools.simdevice running the firmware; its output is kept."""

    def __init__(self, root):
        self.root = root
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.simdevice", str(root), "--max-restarts", "1"]
            + ["--main", str(REPO / "bench" / "soak_device.py")],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def network(self, up):
        tmp = self.root / "network.json.tmp"
        tmp.write_text(json.dumps({"up": up}))
        tmp.replace(self.root / "network.json")

    def heap(self):
        return [int(x.split()[2]) for x in self.lines if x.startswith("soak: heap")]

    def stop(self):
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


def config(port, interval=1):
    cfg = sample_config(port, TOKEN)
    cfg["server"]["observe_refresh_s"] = 10
    cfg["telemetry"]["interval_s"] = interval
    cfg["sensors"].append({"type": "sim", "key": SEQ, "min": 0, "max": 10**9, "step": 1})
    return cfg


def soak(cycles, every=60, seed=1, loss=0.1, workdir=None, log=print):
    """Run the soak; -> the report (a dict)."""
    tmp = tempfile.TemporaryDirectory(prefix="soak-") if workdir is None else None
    work = Path(workdir or tmp.name)
    rnd = random.Random(seed)
    base = {"seed": seed, "loss": loss, "duplicate": 0.1, "reorder": 0.1, "jitter": 0.02}
    clean = {"loss": 0.0, "duplicate": 0.0, "reorder": 0.0, "jitter": 0.0}
    server = Server(work / "tbsim", base)
    did = server.sim.create_device("soak-device", token=TOKEN)["id"]
    root = work / "device"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config(server.port)))
    device = Device(root)
    report = {"cycles": cycles, "seed": seed, "loss": loss, "duplicate": 0.1, "reorder": 0.1}
    rpc = {"sent": 0, "answered": 0}
    outages = 0
    t0 = time.monotonic()
    try:
        for cycle in range(1, cycles + 1):
            if device.proc.poll() is not None:
                break
            if cycle % every == 0:
                if (cycle // every) % 2:
                    outages += 1
                    length = max(3, min(15, every // 2))
                    log("soak: cycle %d: network outage for %d s" % (cycle, length))
                    device.network(False)
                    server.configure(dict(base, loss=1.0))
                    time.sleep(length)
                    device.network(True)
                    server.configure(base)
                else:
                    log("soak: cycle %d: tbsim restart" % cycle)
                    server.restart()
            if cycle % 5 == 0:
                rpc["sent"] += 1
                try:
                    level = rnd.randint(0, 1)
                    got = server.sim.rpc(did, "setGpio", {"pin": 26, "value": level}, timeout=3)
                    rpc["answered"] += got == {"pin": 26, "value": level}
                except RpcTimeout:
                    pass
            time.sleep(max(0.0, t0 + cycle - time.monotonic()))
        # drain: no faults; wait until tbsim has everything up to a message read after this
        server.configure(clean)
        device.network(True)
        mark = max(server.seqs, default=-1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and device.proc.poll() is None:
            got = set(server.stored(did))
            top = max(got, default=-1)
            if top > mark + 2 and got >= set(range(top + 1)):
                break
            time.sleep(0.5)
        # after a tbsim restart the device re-registers within observe_refresh_s (10 s)
        final_rpc = None
        deadline = time.monotonic() + 30
        while final_rpc is None and time.monotonic() < deadline:
            try:
                final_rpc = server.sim.rpc(did, "getGpio", {"pin": 26}, timeout=5)
            except RpcTimeout:
                pass
    finally:
        device.stop()
        stored = server.stored(did)
        dropped = server.dropped_reported(did)
        server.sim.stop()
    spool = Spool(str(root / "spool"), config(0)["telemetry"]["spool_bytes"])
    spooled = set()
    while len(spool):
        spooled.add(json.loads(spool.peek())["values"].get(SEQ))
        spool.pop()
    produced = max(set(stored) | spooled | set(server.seqs), default=-1) + 1
    heap = device.heap()
    # the first boot checks config.json and restarts once (firmware/checked.py): not a crash
    crashed = [
        x
        for x in device.lines
        if "Traceback" in x or (x.startswith("simdevice:") and x != CHECKED_RESTART)
    ]
    report.update(
        seconds=round(time.monotonic() - t0, 1),
        produced=produced,
        stored=len(set(stored)),
        received_twice=len(server.seqs) - len(set(server.seqs)),
        stored_twice=len(stored) - len(set(stored)),
        # on the board's flash only: a batch the server took just before the stop may still
        # be in the spool (it goes once its answer is in)
        still_spooled=len(spooled - set(stored)),
        dropped_by_full_spool=dropped,
        lost=len(set(range(produced)) - set(stored) - spooled),
        outages=outages,
        tbsim_restarts=server.restarts,
        reregistrations=server.subscriptions - 2,
        rpc_sent=rpc["sent"],
        rpc_answered=rpc["answered"],
        rpc_after_faults=final_rpc,
        heap_start=heap[0] if heap else None,
        heap_end=heap[-1] if heap else None,
        heap_max=max(heap) if heap else None,
        crashed=crashed[-3:],
    )
    if tmp:
        tmp.cleanup()
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--cycles", type=int, default=600, help="telemetry cycles (1 s each)")
    ap.add_argument("--every", type=int, default=60, help="cycles between outage / restart")
    ap.add_argument("--seed", type=int, default=1, help="seed of every fault")
    ap.add_argument("--loss", type=float, default=0.1, help="loss each way outside outages")
    ap.add_argument("--json", help="also write the report here")
    a = ap.parse_args(argv)
    r = soak(a.cycles, a.every, a.seed, a.loss)
    for k, v in r.items():
        print("%-22s %s" % (k, v))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    bad = (
        r["lost"]
        or r["stored_twice"]
        or r["crashed"]
        or "value" not in (r["rpc_after_faults"] or {})
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
