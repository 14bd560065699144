# wake.py: what a deep-sleep wake costs (issue 15), the real firmware in power mode "sleep" on
# the unix port (tools.simdevice: deep sleep ends the process, the supervisor starts it again
# after the time) against tbsim in this process on loopback, with 0 and 50 ms of added RTT
# (tbsim's delay knob, 25 ms each way between its socket and its CoAP layer). Per wake:
#   - the CoAP part: the firmware's "CoAP M ms" (connected to the deep sleep call), and as a
#     cross-check what tbsim's socket sees from the wake's first datagram in to its last one
#     in or out (a datagram out counted when the delay lets it go);
#   - datagrams both ways, tbsim's fault counters (everything between two sleeps);
# for three cases: nothing pending; one persistent two-way RPC sent while the board slept;
# one shared attribute (telemetry_interval, to a new value) changed while it slept. The first
# wake after power on (boot attributes, the update check) is not counted. Then bench/energy.py's
# battery_days() of the medians on 2 x AA, and the targets of issue 15.
# Usage: .venv/bin/python bench/wake.py [--quick] [--wakes N] [--listen-ms MS]
import argparse
import importlib.util
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import TOKEN, Firmware, start_sim  # noqa: E402
from tests.e2e.test_sleep import ASLEEP, sleep_config  # noqa: E402
from tools.tbsim.faults import Direction  # noqa: E402
from tools.tbsim.wire import Message, codec  # noqa: E402

_spec = importlib.util.spec_from_file_location("energy", ROOT / "bench" / "energy.py")
energy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(energy)

CASES = ("nothing pending", "one pending RPC", "one attribute change")
RTTS_MS = (0, 50)
INTERVAL_S = 3  # wake to wake on the simulation: room to change things while it sleeps
TARGET_RTTS = 3  # "the CoAP part of a wake <= 3 round trips + 100 ms" at 50 ms RTT
TARGET_SLACK_MS = 100
WAKE_RE = re.compile(r"awake (\d+) ms \(CoAP (\d+) ms\), sleeping (\d+) ms")
# after that line, how long to count what tbsim still sends (an ACK it defers 0.5 s) before
# the next case's change; the board sleeps at least 1 s
SETTLE_S = 0.8

# every datagram tbsim's socket passes, (monotonic s, direction, data); a datagram out is stamped
# when its delay ends, as that is when it leaves
_seen = []
_seen_lock = threading.Lock()
_pass = Direction.pass_datagram


def _stamped(self, loop, deliver, data):
    with _seen_lock:
        t = time.monotonic() + (self.delay if self.name == "out" else 0.0)
        _seen.append((t, self.name, bytes(data)))
    return _pass(self, loop, deliver, data)


def stamp_datagrams():
    # only while measuring: importing this file (its test does) leaves tbsim as it is
    Direction.pass_datagram = _stamped


def parse_wake(line):
    """{"awake_ms", "coap_ms", "sleep_ms"} of the firmware's "I sleep: awake ..." line, or None."""
    m = WAKE_RE.search(line or "")
    if m is None:
        return None
    return dict(zip(("awake_ms", "coap_ms", "sleep_ms"), map(int, m.groups())))


def span_ms(stamps):
    """What tbsim saw of a wake, from (time s, direction, datagram) stamps: ms from the first
    datagram in to the last in or out, and ms from the first deregistration (a GET with
    Observe=1) to that last one; None where there is none."""
    ins = [t for t, d, _ in stamps if d == "in"]
    if not ins:
        return None, None
    first = min(ins)
    last = max(t for t, _, _ in stamps if t >= first)
    dereg = [t for t, d, data in stamps if d == "in" and _observe(data) == 1]
    return (last - first) * 1000.0, (last - min(dereg)) * 1000.0 if dereg else None


def _observe(data):
    try:
        return Message.decode(data).uint(codec.OBSERVE)
    except Exception:  # not a CoAP message tbsim would take: none
        return None


def summary(values):
    """(median, max) of the numbers that are not None, or (None, None)."""
    got = [v for v in values if v is not None]
    if not got:
        return None, None
    return statistics.median(got), max(got)


def counters(sim):
    s = sim.faults.snapshot()
    return s["in"]["counters"]["datagrams"], s["out"]["counters"]["datagrams"]


def one_rtt(rtt_ms, wakes, listen_ms):
    # one device through every case, `wakes` counted wakes each -> {case: [wake, ...]}
    out = {c: [] for c in CASES}
    with tempfile.TemporaryDirectory() as work:
        sim = start_sim(Path(work) / "tbsim")
        half = rtt_ms / 2000.0
        sim.faults.configure({"in": {"delay": half}, "out": {"delay": half}})
        did = sim.create_device("bench", token=TOKEN)["id"]
        cfg = sleep_config(sim, INTERVAL_S, awake_max_s=30, listen_ms=listen_ms)
        root = Path(work) / "device"
        root.mkdir()
        (root / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(root)
        try:
            fw.wait_line(ASLEEP, timeout=60)  # the first wake, after power on: not counted
            time.sleep(SETTLE_S)
            interval = INTERVAL_S
            for case in CASES:
                for _ in range(wakes):
                    mark = fw.mark()
                    rid = None
                    if case == "one pending RPC":
                        expires = sim.core.clock() + 120000
                        args = (did, "getGpioStatus", None, False, expires, None, None)
                        rid = sim.call(sim.core.persistent_rpc, *args)
                    elif case == "one attribute change":
                        interval = INTERVAL_S + 0.5 if interval == INTERVAL_S else INTERVAL_S
                        sim.set_shared(did, {"telemetry_interval": interval})
                    c0 = counters(sim)
                    with _seen_lock:
                        del _seen[:]
                    line = fw.wait_line("I sleep: awake", timeout=60, after=mark)
                    fw.wait_line(ASLEEP, timeout=60, after=mark)
                    c1 = counters(sim)
                    with _seen_lock:
                        stamps = list(_seen)
                    time.sleep(SETTLE_S)  # what tbsim still sends, to a board asleep
                    c2 = counters(sim)
                    w = parse_wake(line)
                    w["in"], w["out"] = c1[0] - c0[0], c1[1] - c0[1]
                    w["datagrams"] = w["in"] + w["out"]
                    w["late"] = c2[0] + c2[1] - c1[0] - c1[1]
                    w["tbsim_ms"], w["dereg_ms"] = span_ms(stamps)
                    if rid is not None:
                        w["rpc"] = sim.call(sim.store.rpc_by_uuid, rid)["status"]
                    out[case].append(w)
        finally:
            fw.stop()
            sim.stop()
    return out


def case_summary(ws):
    """The table's figures for one case's wakes (dicts as one_rtt() makes them)."""
    return {
        "coap_ms": summary([w["coap_ms"] for w in ws]),
        "tbsim_ms": summary([w["tbsim_ms"] for w in ws]),
        "dereg_ms": summary([w["dereg_ms"] for w in ws]),
        "datagrams": summary([w["datagrams"] for w in ws]),
        "in": statistics.median([w["in"] for w in ws]),
        "out": statistics.median([w["out"] for w in ws]),
        "late": statistics.median([w["late"] for w in ws]),
        "awake_ms": summary([w["awake_ms"] for w in ws])[0],
        "rpcs_answered": sum(1 for w in ws if w.get("rpc") == "SUCCESSFUL"),
        "rpcs": sum(1 for w in ws if "rpc" in w),
        "wakes": len(ws),
    }


def battery(coap_ms, datagrams):
    """Days on 2 x AA at each of energy.py's intervals, from a wake's medians."""
    return [energy.battery_days(s, coap_ms, round(datagrams)) for s in energy.INTERVALS_S]


def targets(coap_ms_50, datagrams_50):
    """(CoAP limit ms, met, days at 10 minutes, met) for nothing pending at 50 ms RTT."""
    limit = TARGET_RTTS * 50 + TARGET_SLACK_MS
    days = energy.battery_days(energy.TARGET_INTERVAL_S, coap_ms_50, round(datagrams_50))
    return limit, coap_ms_50 <= limit, days, days >= energy.TARGET_DAYS


def _ms(x):
    return "-" if x is None else "%.0f" % x


def row(rtt, case, f):
    """One line of the measured table."""
    note = ""
    if f["rpcs"]:
        note = " (%d of %d RPCs answered in their wake)" % (f["rpcs_answered"], f["rpcs"])
    c, t, d, g = f["coap_ms"], f["tbsim_ms"], f["dereg_ms"], f["datagrams"]
    return "| %d ms | %s%s | %s (%s) | %s (%s) | %s | %g + %g = %g (%d) | %g | %s |" % (
        rtt, case, note, _ms(c[0]), _ms(c[1]), _ms(t[0]), _ms(t[1]), _ms(d[0]),
        f["in"], f["out"], g[0], g[1], f["late"], _ms(f["awake_ms"]),
    )  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/wake.py", description="What a deep-sleep wake costs.")
    ap.add_argument("--quick", action="store_true", help="3 wakes a case instead of 8")
    ap.add_argument("--wakes", type=int, help="wakes counted per case and RTT")
    ap.add_argument("--listen-ms", type=int, default=100, help="power.listen_ms (default 100)")
    a = ap.parse_args(argv)
    wakes = a.wakes or (3 if a.quick else 8)
    stamp_datagrams()
    print(
        "wake (%s): the firmware in power mode sleep on the unix port against tbsim on loopback,"
        " listen_ms %d, %d wakes a case, interval %d s; RTT added by tbsim's delay knob (half"
        " each way)" % ("quick" if a.quick else "full", a.listen_ms, wakes, INTERVAL_S)
    )
    print()
    print("| RTT | case | CoAP ms, median (max) | tbsim: first to last datagram, ms | of it, "
          "ending the subscriptions | datagrams in + out, median (max) | then to the board "
          "asleep | awake ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    medians = {}
    for rtt in RTTS_MS:
        got = one_rtt(rtt, wakes, a.listen_ms)
        for case in CASES:
            f = case_summary(got[case])
            medians[rtt, case] = f["coap_ms"][0], f["datagrams"][0]
            print(row(rtt, case, f))
    print()
    print("battery life by bench/energy.py (2 x AA, fast rejoin, bare module), the medians above:")
    print()
    print("| RTT | case | 1 min | 10 min | 60 min |")
    print("|---|---|---|---|---|")
    for (rtt, case), (coap_ms, dg) in medians.items():
        days = battery(coap_ms, dg)
        cells = " | ".join("%.0f d (%.2f y)" % (d, d / 365.0) for d in days)
        print("| %d ms | %s | %s |" % (rtt, case, cells))
    print()
    coap_ms, dg = medians[50, CASES[0]]
    limit, fast, days, lasts = targets(coap_ms, dg)
    print(
        "target: nothing pending at 50 ms RTT, CoAP <= %d round trips + %d ms (%d ms): %s"
        " (median %.0f ms)"
        % (TARGET_RTTS, TARGET_SLACK_MS, limit, "met" if fast else "NOT met", coap_ms)
    )
    print(
        "target: >= 2 years at 10-minute reports by the model (nothing pending, 50 ms RTT): %s"
        " (%.0f days, %.2f years)" % ("met" if lasts else "NOT met", days, days / 365.0)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
