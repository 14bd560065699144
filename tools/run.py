# run.py: what `make run` starts: tbsim and a simulated device on the MicroPython unix port,
# talking CoAP over loopback. The device posts telemetry and answers RPC; this script sets a
# shared attribute and sends an RPC so every path shows up in the log.
# Usage: python -m tools.run [--seconds N] [--coap-port P] [--http-port P] [--data DIR]
import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

from tools.tbsim import RpcTimeout, TbSim

ROOT = Path(__file__).resolve().parent.parent
NAME = "demo-device"


def device(sim):
    dev = sim.call(sim.store.device_by_name, NAME)
    if dev is None:
        return sim.create_device(NAME)
    return dict(dev, token=sim.call(sim.store.credentials, dev["id"])["credentials_id"])


def operator(sim, did, stop):
    # what a ThingsBoard user would do from the UI
    sim.set_shared(did, {"greeting": "hello from tbsim"})
    try:
        print("operator: rpc echo ->", sim.rpc(did, "echo", {"pin": 2, "value": 1}, timeout=20))
    except RpcTimeout:
        print("operator: rpc echo -> no reply within 20 s")
    if not stop.wait(3):
        sim.set_shared(did, {"greeting": "updated"})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=0, help="stop after this long (0: Ctrl-C)")
    ap.add_argument("--coap-port", type=int, default=5683)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--data", default=str(ROOT / "data"))
    a = ap.parse_args()
    sim = TbSim(a.data, coap_port=a.coap_port, http_port=a.http_port).start()
    dev = device(sim)
    print("run: device %s, admin API on http://127.0.0.1:%d" % (NAME, sim.http_port))
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % (ROOT / "lib"))
    args = [str(ROOT / ".venv" / "bin" / "micropython"), str(ROOT / "tools" / "demo_device.py")]
    args += ["127.0.0.1", str(sim.coap_port), dev["token"]]
    if a.seconds:
        args.append(str(a.seconds))
    proc = subprocess.Popen(args, env=env)
    stop = threading.Event()
    threading.Thread(target=operator, args=(sim, dev["id"], stop), daemon=True).start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        rc = proc.wait()
    stop.set()
    print("run: stored telemetry", sim.telemetry(dev["id"]))
    sim.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
