# uplink.py: what the firmware's uplink costs the server (issue 14), the real firmware on the
# unix port (tools.simdevice) against tbsim in this process on loopback:
#   1. telemetry requests per stored reading with 0, 10 and 30 % loss both ways, a reading a
#      second, and 50 % at two readings a second, for SECONDS: requests are what tbsim's
#      telemetry handler processed (sim.telemetry_posts; a CoAP retransmission of the same
#      message ID is answered from tbsim's cache and not counted, as ThingsBoard
#      de-duplicates it; a message sent again with a new ID is counted);
#   2. the drain of a backlog: READINGS readings left in the spool by an earlier outage, from
#      the boot to tbsim holding them all;
#   3. datagrams a minute from a device the server refuses: a token it does not know (4.01),
#      and a device over its rate limit (5.00); the second minute after the first refusal
#      (the device's waits grow over the first).
# Usage: .venv/bin/python bench/uplink.py [--quick] [--seconds N] [--readings N]
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware.spool import Spool  # noqa: E402
from tests.e2e.conftest import SEQ, TOKEN, Firmware, make_config, rows, start_sim  # noqa: E402


def device(work, sim, cfg):
    root = Path(work) / "device"
    root.mkdir(exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg))
    return root, Firmware(root)


def loss(seconds, p, interval=1):
    with tempfile.TemporaryDirectory() as work:
        sim = start_sim(Path(work) / "tbsim")
        sim.faults.configure({"seed": 11, "in": {"loss": p}, "out": {"loss": p}})
        did = sim.create_device("bench", token=TOKEN)["id"]
        cfg = make_config(sim)
        # a spool that holds what heavy loss holds back (its backlog drains after)
        cfg["telemetry"].update(interval_s=interval, spool_bytes=262144)
        _, fw = device(work, sim, cfg)
        try:
            fw.wait_line("I app: reporting to", timeout=60)
            posts0 = sim.telemetry_posts(did)
            stored0 = len(rows(sim, did))
            time.sleep(seconds)  # a benchmark's measuring time, not a test's wait
            stored = len(rows(sim, did)) - stored0
            values = [v for _, v in rows(sim, did)]
            twice = len(values) - len(set(values))
            return sim.telemetry_posts(did) - posts0, stored, twice
        finally:
            fw.stop()
            sim.stop()


def backlog(readings):
    with tempfile.TemporaryDirectory() as work:
        sim = start_sim(Path(work) / "tbsim")
        did = sim.create_device("bench", token=TOKEN)["id"]
        cfg = make_config(sim)
        root = Path(work) / "device"
        root.mkdir()
        spool = Spool(str(root / "spool"), cfg["telemetry"]["spool_bytes"] * 64)
        base = int(time.time() * 1000) - readings * 1000
        for i in range(readings):
            spool.append(b'{"ts":%d,"values":{"%s":%d}}' % (base + i * 1000, SEQ.encode(), -1 - i))
        cfg["telemetry"]["spool_bytes"] = spool.capacity
        (root / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(root)
        try:
            start = time.monotonic()
            fw.wait_line("I app: firmware", timeout=60)
            while sum(1 for _, v in rows(sim, did) if v < 0) < readings:
                if time.monotonic() - start > 600:
                    return None, sim.telemetry_posts(did)
                time.sleep(0.05)
            return time.monotonic() - start, sim.telemetry_posts(did)
        finally:
            fw.stop()
            sim.stop()


def refused(kind, seconds):
    # datagrams tbsim received from the device a minute, over `seconds` once the device has
    # been refused for as long (its waits have grown by then)
    with tempfile.TemporaryDirectory() as work:
        limits = {"device": "1:3600"} if kind == "5.00" else None
        sim = start_sim(Path(work) / "tbsim", rate_limits=limits)
        sim.create_device("bench", token=TOKEN)
        token = TOKEN if kind == "5.00" else "NOT_A_TOKEN"
        _, fw = device(work, sim, make_config(sim, token=token))
        try:
            fw.wait_line("refuses the access token" if kind == "4.01" else "not taken", timeout=60)
            time.sleep(seconds)  # the device backs off
            before = sim.faults.snapshot()["in"]["counters"]["datagrams"]
            time.sleep(seconds)  # a benchmark's measuring time
            after = sim.faults.snapshot()["in"]["counters"]["datagrams"]
            return (after - before) * 60 / seconds
        finally:
            fw.stop()
            sim.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="20 s per loss run, 200 readings")
    ap.add_argument("--seconds", type=int, default=60, help="per loss run (default 60)")
    ap.add_argument("--readings", type=int, default=1000, help="backlog (default 1000)")
    a = ap.parse_args()
    seconds, readings, minute = (20, 200, 30) if a.quick else (a.seconds, a.readings, 60)
    print("uplink (%s): the firmware on the unix port against tbsim on loopback, 1 s interval"
          % ("quick" if a.quick else "full"))  # fmt: skip
    print("telemetry requests per stored reading, %d s each:" % seconds)
    for p, interval in ((0.0, 1), (0.1, 1), (0.3, 1), (0.5, 0.5)):
        n, stored, twice = loss(seconds, p, interval)
        print(
            "  %3d %% loss both ways, %.1f s interval: %4d requests, %4d readings stored "
            "(%d of them twice): %.2f requests per reading"
            % (p * 100, interval, n, stored, twice, n / max(stored, 1))
        )
    t, n = backlog(readings)
    if t is None:
        print("backlog of %d readings: not drained in 600 s (%d requests)" % (readings, n))
    else:
        print(
            "backlog of %d readings: drained %.1f s after boot in %d requests" % (readings, t, n)
        )
    for kind in ("4.01", "5.00"):
        print("refused with %s: %.1f datagrams a minute" % (kind, refused(kind, minute)))


if __name__ == "__main__":
    main()
