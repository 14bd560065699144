# run.py: what `make run` starts: tbsim and one simulated device, the real firmware (main.py)
# on the MicroPython unix port with the simulated board, talking CoAP over loopback. An
# "operator" then does what a ThingsBoard user would: changes a shared attribute and drives a
# GPIO pin over RPC, so every path shows up in the log. The first line is the URL of tbsim's
# page, where all of it can be watched and driven.
# Usage: python -m tools.run [--seconds N] [--coap-port P] [--http-port P] [--data DIR]
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tools.tbsim import RpcTimeout, TbSim
from tools.tbsim.events import EventLog

ROOT = Path(__file__).resolve().parent.parent
NAME = "demo-device"


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


def operator(sim, did, stop):
    # what a ThingsBoard user would do from a dashboard
    if stop.wait(3):
        return
    sim.set_shared(did, {"telemetry_interval": 3})
    for method, params in (("setGpio", {"pin": 26, "value": 1}), ("getGpioStatus", None)):
        try:
            reply = sim.rpc(did, method, params, timeout=20)
        except RpcTimeout:
            reply = "no reply within 20 s"
        print("operator: rpc %s ->" % method, reply, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=0, help="stop after this long (0: Ctrl-C)")
    ap.add_argument("--coap-port", type=int, default=5683)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    a = ap.parse_args()
    events = EventLog(enabled=False)  # quiet until the page's URL is out
    sim = TbSim(str(a.data / "tbsim"), coap_port=a.coap_port, http_port=a.http_port, log=events)
    sim.start()
    print("tbsim page: http://127.0.0.1:%d/" % sim.http_port, flush=True)
    events.enabled = True
    dev = device(sim)
    board = a.data / "device"
    board.mkdir(parents=True, exist_ok=True)
    (board / "config.json").write_text(json.dumps(sample_config(sim.coap_port, dev["token"])))
    print("run: tbsim on udp port %d, device %s in %s" % (sim.coap_port, NAME, board))
    print("run: device id %s" % dev["id"], flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.simdevice", str(board)], cwd=ROOT, env=dict(os.environ)
    )
    stop = threading.Event()
    threading.Thread(target=operator, args=(sim, dev["id"], stop), daemon=True).start()
    try:
        proc.wait(a.seconds or None)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    except KeyboardInterrupt:
        proc.wait()
    stop.set()
    print("run: stored telemetry", sim.telemetry(dev["id"]), flush=True)
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
