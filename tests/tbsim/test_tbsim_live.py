# What tbsim's page is fed (live.py over /api/tbsim/events): a snapshot, then every change
# as it happens, whoever made it (a device over CoAP, the admin API, a script); the page's
# files; the outage switch of the fault knobs.
import json
import socket

from tbsim_helpers import http, make_sim

from tests.e2e.conftest import until
from tools.tbsim import RpcTimeout
from tools.tbsim.wire import codec


class Events:
    # one page's event stream, read with a plain socket: every message is a list of events
    def __init__(self, sim):
        self.sock = socket.create_connection(("127.0.0.1", sim.http_port), timeout=5)
        self.sock.sendall(b"GET /api/tbsim/events HTTP/1.1\r\nHost: tbsim\r\n\r\n")
        self.buf = b""
        self.events = []  # received, not yet waited for
        self.head = self._until(b"\r\n\r\n").decode()

    def _until(self, sep):
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream ended")
            self.buf += chunk
        out, self.buf = self.buf.split(sep, 1)
        return out

    def message(self):
        while True:
            lines = self._until(b"\n\n").decode().split("\n")
            data = [x[len("data: ") :] for x in lines if x.startswith("data: ")]
            if data:
                return json.loads("".join(data))

    def wait(self, kind, **match):
        # the next event of that type whose fields have these values (others are skipped)
        while True:
            while self.events:
                ev = self.events.pop(0)
                if ev["type"] == kind and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            self.events = self.message()

    def close(self):
        self.sock.close()


def test_a_page_gets_a_snapshot_then_every_change(sim, udp, device):
    did = device["id"]
    sim.set_shared(did, {"interval": 5})
    ev = Events(sim)
    assert "Content-Type: text/event-stream" in ev.head
    (snap,) = ev.message()
    assert snap["type"] == "snapshot" and snap["inactivityTimeout"] == 60000
    (d,) = snap["devices"]
    assert (d["name"], d["token"], d["lastActivity"]) == ("dev-1", "TOKEN_ONE", None)
    assert d["attributes"]["SHARED_SCOPE"]["interval"][0] == 5 and d["latest"] == {}
    assert snap["faults"]["outage"] is False
    # a device's telemetry and attributes over CoAP
    udp.response(
        udp.request(codec.POST, "/api/v1/TOKEN_ONE/telemetry", b'{"ts":1000,"values":{"t":2}}')
    )
    act = ev.wait("activity", device=did)
    tel = ev.wait("telemetry", device=did)
    assert tel["entries"] == [[1000, {"t": 2}]] and tel["t"] >= act["t"]
    udp.response(udp.request(codec.POST, "/api/v1/TOKEN_ONE/attributes", b'{"fw":"v1.0"}'))
    got = ev.wait("attributes", device=did, scope="CLIENT_SCOPE")
    assert got["values"] == {"fw": "v1.0"}
    # the admin side: shared attributes, RPCs and their outcome, packages, faults, devices
    sim.delete_shared(did, ["interval"])
    assert ev.wait("attributes", scope="SHARED_SCOPE")["deleted"] == ["interval"]
    try:
        sim.rpc(did, "blink", timeout=0.1)
    except RpcTimeout:
        pass
    assert ev.wait("rpc", device=did)["rpc"]["status"] == "QUEUED"
    rpc = ev.wait("rpc", device=did)["rpc"]
    assert (rpc["method"], rpc["status"]) == ("blink", "TIMEOUT")
    pid = sim.add_ota("app", "1.1", b"\x01" * 100)
    (pkg,) = ev.wait("packages")["packages"]
    assert (pkg["id"]["id"], pkg["dataSize"]) == (pid, 100)
    sim.assign_ota(did, pid)
    assert ev.wait("device", device=did)["state"]["firmwareId"]["id"] == pid
    sim.call(sim.faults.configure, {"in": {"loss": 0.5}})
    assert ev.wait("faults")["faults"]["in"]["loss"] == 0.5
    other = sim.create_device("dev-2")
    assert ev.wait("device", device=other["id"])["state"]["name"] == "dev-2"
    assert http(sim, "DELETE", "/api/device/" + other["id"])[0] == 200
    ev.wait("device_deleted", device=other["id"])
    # and the state as a whole, for scripts
    status, state = http(sim, "GET", "/api/tbsim/state")
    assert status == 200 and state["devices"][0]["latest"]["t"] == [1000, 2]
    ev.close()


def test_a_page_that_went_away_is_forgotten(sim, device):
    ev = Events(sim)
    ev.message()
    assert sim.call(lambda: len(sim.live.clients)) == 1
    ev.close()

    def gone():
        sim.set_shared(device["id"], {"x": 1})  # the next writes find the page gone
        return sim.call(lambda: len(sim.live.clients)) == 0

    until(gone, what="the closed stream dropped")


def test_streams_end_when_tbsim_stops(tmp_path):
    s = make_sim(tmp_path / "d")
    ev = Events(s)
    ev.message()
    s.stop()
    try:
        while ev.message():
            pass
    except EOFError:
        pass
    ev.close()


def test_outage_cuts_both_ways_until_switched_off(sim, udp, device):
    status, snap = http(sim, "POST", "/api/tbsim/faults", {"outage": True})
    assert status == 200 and snap["outage"] is True
    udp.request(codec.POST, "/api/v1/TOKEN_ONE/telemetry", b'{"t":1}')
    assert udp.nothing(0.5)
    assert sim.telemetry(device["id"]) == {}
    assert http(sim, "GET", "/api/tbsim/faults")[1]["in"]["counters"]["dropped"] == 1
    status, err = http(sim, "POST", "/api/tbsim/faults", {"outage": "yes"})
    assert status == 400 and "outage must be true or false" in err["message"]
    http(sim, "POST", "/api/tbsim/faults", {"outage": False})
    udp.response(udp.request(codec.POST, "/api/v1/TOKEN_ONE/telemetry", b'{"t":2}'))
    assert sim.telemetry(device["id"])["t"][0]["value"] == 2


def test_the_page_and_its_files(sim):
    status, html = http(sim, "GET", "/")
    assert status == 200 and b'<script src="/web/app.js">' in html
    assert http(sim, "GET", "/web/app.js")[0] == 200
    assert http(sim, "GET", "/web/style.css")[0] == 200
    assert http(sim, "GET", "/web/nothing.js")[0] == 404
    assert http(sim, "GET", "/web/../server.py")[0] == 404
    status, js = http(sim, "GET", "/web/uplot/uPlot.iife.min.js")  # installed by make setup
    assert status == 200 and b"uPlot" in js
    status, text = http(sim, "GET", "/web/uplot/LICENSE")
    assert status == 200 and b"MIT License" in text
    assert http(sim, "GET", "/web/uplot/package.json")[0] == 404


def test_fault_knobs_turned_from_another_thread_reach_the_page(sim):
    ev = Events(sim)
    ev.message()
    sim.faults.configure({"outage": True})  # this thread, not tbsim's loop
    assert ev.wait("faults")["faults"]["outage"] is True
    ev.close()
