# Restart persistence (everything but RPC ids, which start at 0 again) and the CLI.
import json
import os
import queue
import re
import subprocess
import sys
import threading

import aiocoap
from tbsim_helpers import ROOT, Udp, aiocoap_request, coap_client, http, make_sim

from tools.tbsim.wire import codec


def call_rpc(sim, did, out):
    out.append(http(sim, "POST", "/api/rpc/twoway/" + did, {"method": "m", "params": 1}))


def answer_rpcs(sim, udp, count):
    # subscribe to RPC, answer `count` RPCs sent from the admin API -> their ids
    req = udp.request(codec.GET, "/api/v1/TOK/rpc", token=b"rp", opts=[(codec.OBSERVE, 0)])
    udp.ack(udp.recv())
    ids = []
    did = http(sim, "GET", "/api/tenant/devices?deviceName=d")[1]["id"]["id"]
    for _ in range(count):
        box = []
        t = threading.Thread(target=call_rpc, args=(sim, did, box))
        t.start()
        note = udp.recv()
        udp.ack(note)
        rpc_id = json.loads(note.payload)["id"]
        reply = udp.request(codec.POST, "/api/v1/TOK/rpc/%d" % rpc_id, b'{"ok":1}')
        udp.response(reply)
        t.join(5)
        assert box == [(200, {"ok": 1})]
        ids.append(rpc_id)
    return req, ids


def test_restart_keeps_everything_but_rpc_ids(tmp_path):
    data = tmp_path / "data"
    sim = make_sim(data)
    udp = Udp(sim)
    try:
        did = http(sim, "POST", "/api/device?accessToken=TOK", {"name": "d"})[1]["id"]["id"]
        assert aiocoap_request(sim, aiocoap.POST, "/api/v1/TOK/telemetry", b"{t:1}")[0] == "2.01"
        assert aiocoap_request(sim, aiocoap.POST, "/api/v1/TOK/attributes", b"{c:2}")[0] == "2.01"
        sim.set_shared(did, {"s": 3})
        http(
            sim,
            "POST",
            "/api/deviceProfile",
            {
                "name": "p",
                "provisionType": "ALLOW_CREATE_NEW_DEVICES",
                "provisionDeviceKey": "k",
                "provisionDeviceSecret": "s",
            },
        )
        pkg = http(sim, "POST", "/api/otaPackage", {"title": "fw", "version": "1"})[1]
        pid = pkg["id"]["id"]
        http(
            sim,
            "POST",
            "/api/otaPackage/" + pid,
            raw=b"0123456789",
            headers={"Content-Type": "application/octet-stream"},
        )
        dev = http(sim, "GET", "/api/device/" + did)[1]
        http(sim, "POST", "/api/device", dict(dev, firmwareId={"id": pid}))
        assert answer_rpcs(sim, udp, 2)[1] == [0, 1]
    finally:
        udp.close()
        sim.stop()

    sim = make_sim(data)
    udp = Udp(sim)
    try:
        assert sim.telemetry(did)["t"][0]["value"] == 1
        assert sim.attributes(did, "CLIENT_SCOPE") == {"c": 2}
        assert sim.attributes(did, "SHARED_SCOPE")["s"] == 3
        assert sim.attributes(did, "SHARED_SCOPE")["fw_size"] == 10
        assert [p["name"] for p in http(sim, "GET", "/api/deviceProfiles")[1]["data"]] == [
            "default",
            "p",
        ]
        code, payload, _ = aiocoap_request(
            sim, aiocoap.GET, "/fw/TOK", query=["size=4", "chunk=2"]
        )
        assert (code, payload) == ("2.05", b"89")
        assert answer_rpcs(sim, udp, 1)[1] == [0]  # ids restart at 0, as TB's actors do
        log = http(sim, "GET", "/api/tbsim/rpc/" + did)[1]
        assert [r["rpc_id"] for r in log] == [0, 1, 0]
    finally:
        udp.close()
        sim.stop()


def test_cli_readiness_line_flags_and_masked_event_lines(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.tbsim",
            "--coap-port",
            "0",
            "--http-port",
            "0",
            "--host",
            "127.0.0.1",
            "--data",
            str(tmp_path / "d"),
            "--delay-out",
            "0.05",
            "--loss-in",
            "0",
            "--fault-seed",
            "5",
            "--ack-timeout",
            "0.5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=10)
        m = re.search(r"tbsim ready coap=udp://127.0.0.1:(\d+) http=http://127.0.0.1:(\d+)", first)
        assert m, first

        class Ports:
            coap_port, http_port = int(m.group(1)), int(m.group(2))

        snap = http(Ports, "GET", "/api/tbsim/faults")[1]
        assert snap["seed"] == 5 and snap["out"]["delay"] == 0.05
        http(Ports, "POST", "/api/device?accessToken=SECRETTOKEN", {"name": "cli-dev"})
        out = coap_client(
            Ports, "-m", "post", "-e", "{x:1}", "coap://HOST/api/v1/SECRETTOKEN/telemetry"
        )
        assert "4." not in out
        event = ""
        while "telemetry" not in event:
            event = lines.get(timeout=5)
        assert "cli-dev" in event and "SECR…" in event and "2.01" in event
        assert "SECRETTOKEN" not in event
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
