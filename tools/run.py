"""What `make run` starts: tbsim and one simulated device, the real firmware (main.py) on the
MicroPython unix port with the simulated board, talking CoAP over loopback. An "operator" then
does what a ThingsBoard user would: changes a shared attribute and drives a GPIO pin over RPC,
so every path shows up in the log. The first line is the URL of tbsim's page, where all of it
can be watched and driven. Ctrl-C or SIGTERM (or --seconds) ends the device first, then tbsim,
and prints what tbsim stored.

With --sleep the device is a battery-powered one (power mode "sleep", docs/sleep.md): it wakes
every 10 s, reports and deep-sleeps; the operator waits until it sleeps and sends it an RPC,
which the next wake runs and answers.

Usage: python -m tools.run [--seconds N] [--coap-port P] [--http-port P] [--data DIR] [--sleep]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tools.tbsim import RpcTimeout, TbSim
from tools.tbsim.events import EventLog, say

ROOT = Path(__file__).resolve().parent.parent
NAME = "demo-device"
SLEEP_INTERVAL_S = 10  # --sleep: a wake every 10 s


def sample_config(port, token):
    # the sample device: simulated sensors and two allowlisted pins, a short interval
    return {
        "server": {"host": "127.0.0.1", "port": port, "observe_refresh_s": 60},
        "token": token,
        "telemetry": {"interval_s": 5, "spool_bytes": 16384},
        "sensors": [
            {"type": "chip_temp", "key": "chip_temp"},
            {"type": "sim", "key": "temperature", "min": 18, "max": 26, "step": 0.5},
            {"type": "dht22", "pin": 4, "prefix": "air_"},
            {"type": "adc", "key": "soil", "pin": 34, "scale": [0, 65535, 0, 100]},
        ],
        "gpio": [
            {"name": "pump", "pin": 26, "direction": "out", "initial": 0},
            {"name": "door", "pin": 35, "direction": "in"},
        ],
        "led": {"pin": 2},
        "log_level": "info",
    }


def device(sim):
    dev = sim.call(sim.store.device_by_name, NAME)
    if dev is None:
        return sim.create_device(NAME)
    return dict(dev, token=sim.call(sim.store.credentials, dev["id"])["credentials_id"])


def ask(sim, did, method, params, timeout):
    # one RPC as a dashboard's button sends it, its reply (or why there is none) printed
    try:
        reply = sim.rpc(did, method, params, timeout=timeout)
    except RpcTimeout:
        reply = "no reply within %d s" % timeout
    say("operator: rpc %s -> %s" % (method, reply))


def operator(sim, did, stop):
    # what a ThingsBoard user would do from a dashboard
    if stop.wait(3):
        return
    try:
        sim.set_shared(did, {"telemetry_interval": 3})
        ask(sim, did, "setGpio", {"pin": 26, "value": 1}, 20)
        ask(sim, did, "getGpioStatus", None, 20)
    except Exception:
        if not stop.is_set():  # the run ending cancels what the operator waits for
            raise


def sleep_operator(sim, did, stop):
    # --sleep: a command for a board that sleeps most of the time. tbsim sees the board's RPC
    # subscription come at a wake and go as it falls asleep; then an RPC is sent, with a
    # timeout longer than the sleep, and the next wake runs and answers it
    def subscribed():
        return sim.call(lambda: sim.registry.get(did, "rpc") is not None)

    try:
        for want in (True, False):  # a wake, then its end
            while subscribed() != want:
                if stop.wait(0.05):
                    return
        say("operator: the board sleeps; rpc setGpio sent, waiting for its next wake")
        ask(sim, did, "setGpio", {"pin": 26, "value": 1}, 2 * SLEEP_INTERVAL_S)
    except Exception:
        if not stop.is_set():
            raise


def interrupt(signum, frame):
    # SIGTERM (e.g. from make, itself terminated) ends the run as Ctrl-C does
    raise KeyboardInterrupt


def stop_device(proc):
    # the supervisor runs in a session of its own (a Ctrl-C at the terminal reaches only this
    # process), so it is told here; it ends the firmware before it exits
    if proc.poll() is None:
        proc.terminate()
    proc.wait()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=int, default=0, help="stop after this long (0: Ctrl-C)")
    ap.add_argument("--coap-port", type=int, default=5683)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--sleep", action="store_true", help="the device deep-sleeps between wakes")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    sim = proc = dev = None
    stop = threading.Event()
    status = 0
    try:
        try:
            events = EventLog(enabled=False)  # quiet until the page's URL is out
            sim = TbSim(
                str(a.data / "tbsim"), coap_port=a.coap_port, http_port=a.http_port, log=events
            )
            sim.start()
        except OSError as e:  # most often: another make run, or a ThingsBoard, has the ports
            say(
                "run: cannot start tbsim on udp/%d and tcp/%d: %s (another make run? choose "
                "others: make run COAP_PORT=5685 HTTP_PORT=8081)" % (a.coap_port, a.http_port, e)
            )
            sim = None
            return 1
        say("tbsim page: http://127.0.0.1:%d/" % sim.http_port)
        events.enabled = True
        dev = device(sim)
        board = a.data / "device"
        board.mkdir(parents=True, exist_ok=True)
        cfg = sample_config(sim.coap_port, dev["token"])
        if a.sleep:
            cfg["telemetry"]["interval_s"] = SLEEP_INTERVAL_S
            cfg["power"] = {"mode": "sleep"}
        (board / "config.json").write_text(json.dumps(cfg))
        say(
            "run: device %s in %s, admin API on http://127.0.0.1:%d" % (NAME, board, sim.http_port)
        )
        say("run: device id %s" % dev["id"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.simdevice", str(board)],
            cwd=ROOT,
            env=dict(os.environ),
            start_new_session=True,
        )
        job = sleep_operator if a.sleep else operator
        threading.Thread(target=job, args=(sim, dev["id"], stop), daemon=True).start()
        status = proc.wait(a.seconds or None)
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:
        status = 130
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        if proc is not None:
            stop_device(proc)
        if dev is not None:
            say("run: stored telemetry %s" % sim.telemetry(dev["id"]))
        if sim is not None:
            sim.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
