# Power saving as ThingsBoard's CoAP transport has it (transport reference §9.3): the PSM and
# eDRX windows after each uplink, RPCs held while asleep and sent on the existing relation at
# the next uplink, attribute updates merged into one notification. Sleep is judged on a fake
# clock that the tests move; only the wire is waited for.
import concurrent.futures
import json

import pytest
from tbsim_helpers import Udp, http, make_sim, subscribe, until

from tools.tbsim import power
from tools.tbsim.wire import codec

T = "/api/v1/TOKEN_ONE"
pool = concurrent.futures.ThreadPoolExecutor(2)


@pytest.fixture
def sim(clocked_sim):
    return clocked_sim


def profile(sim, **client):
    conf = {"type": "COAP", "clientSettings": client}
    body = {"name": "ps-%s" % client["powerMode"], "profileData": {"transportConfiguration": conf}}
    status, p = http(sim, "POST", "/api/deviceProfile", body)
    assert status == 200, p
    return p["id"]["id"]


def device(sim, profile_id=None, transport=None):
    body = {"name": "dev-1"}
    if profile_id:
        body["deviceProfileId"] = {"entityType": "DEVICE_PROFILE", "id": profile_id}
    if transport:
        body["deviceData"] = {"transportConfiguration": transport}
    status, dev = http(sim, "POST", "/api/device?accessToken=TOKEN_ONE", body)
    assert status == 200, dev
    return dev["id"]["id"]


def acked(sim, did):
    # the server has seen the ACK of every CON notification to the device, so the clock can
    # move without racing the uplink that ACK is
    def idle():
        rels = sim.registry.relations.values()
        return all(r.in_flight is None for r in rels if r.device["id"] == did)

    assert until(lambda: sim.call(idle))


def telemetry(udp, mtype=codec.CON):
    return udp.request(codec.POST, T + "/telemetry", b'{"t":1}', mtype=mtype, token=b"tl")


def rpc(sim, did, way="twoway", **body):
    body.setdefault("method", "m")
    return http(sim, "POST", "/api/rpc/%s/%s" % (way, did), body)


def status_of(sim, rid):
    return http(sim, "GET", "/api/rpc/persistent/" + rid)[1]["status"]


def test_psm_holds_rpcs_until_the_next_uplink(sim, udp, clock):
    did = device(sim, profile(sim, powerMode="PSM", psmActivityTimer=5000))
    assert http(sim, "GET", "/api/tbsim/state")[1]["devices"][0]["powerMode"] == "PSM"
    assert subscribe(udp, "rpc", b"rp")[1].code == codec.VALID
    acked(sim, did)
    clock.t += 4000  # still awake: sent at once
    rid = rpc(sim, did, "oneway", persistent=True, params={"n": 1})[1]["rpcId"]
    (m,) = udp.distinct(1)
    assert json.loads(m.payload) == {"id": 0, "method": "m", "params": {"n": 1}}
    assert status_of(sim, rid) == "DELIVERED"
    acked(sim, did)
    clock.t += 5001  # past the activity timer since the ACK (an uplink too)
    rid = rpc(sim, did, persistent=True)[1]["rpcId"]
    assert udp.nothing(0.3)
    assert status_of(sim, rid) == "QUEUED"
    req = telemetry(udp)
    reply, note = udp.distinct(2)  # the request is handled first, then the pending RPCs
    assert (reply.token, reply.code) == (req.token, codec.CREATED)
    assert (note.token, note.uint(codec.OBSERVE)) == (b"rp", 2)  # the existing relation
    assert json.loads(note.payload)["id"] == 1 and udp.nothing(0.2)
    assert status_of(sim, rid) == "DELIVERED"


def test_a_sleeping_psm_device_walks_a_persistent_rpc_through_its_states(sim, udp, clock):
    did = device(sim, profile(sim, powerMode="PSM", psmActivityTimer=5000))
    subscribe(udp, "rpc", b"rp")
    acked(sim, did)
    clock.t += 6000
    rid = rpc(sim, did, persistent=True, params=7)[1]["rpcId"]
    assert status_of(sim, rid) == "QUEUED" and udp.nothing(0.2)
    telemetry(udp)
    got = []
    while not got:  # the reply to the telemetry, then the RPC, left un-ACKed for now
        m = udp.recv()
        if m.token == b"tl" and m.type == codec.CON:
            udp.ack(m)
        elif m.token == b"rp":
            got.append(m)
    assert json.loads(got[0].payload) == {"id": 0, "method": "m", "params": 7}
    assert status_of(sim, rid) == "SENT"
    udp.ack(got[0])
    assert udp.nothing(0.1) and status_of(sim, rid) == "DELIVERED"
    reply = udp.request(codec.POST, T + "/rpc/0", b'{"done":true}', token=b"an")
    assert udp.response(reply).code == codec.CREATED
    entity = http(sim, "GET", "/api/rpc/persistent/" + rid)[1]
    assert (entity["status"], entity["response"]) == ("SUCCESSFUL", {"done": True})


def test_edrx_allows_one_downlink_outside_the_window_per_uplink(sim, udp, clock):
    did = device(sim, profile(sim, powerMode="E_DRX", pagingTransmissionWindow=2000))
    subscribe(udp, "rpc", b"rp", mtype=codec.NON)  # NON: no ACK, so no uplink
    clock.t += 2001
    first = rpc(sim, did, "oneway", persistent=True, method="a")[1]["rpcId"]
    (m,) = udp.distinct(1)
    assert json.loads(m.payload)["method"] == "a" and m.type == codec.NON
    assert status_of(sim, first) == "DELIVERED"
    second = rpc(sim, did, "oneway", persistent=True, method="b")[1]["rpcId"]
    assert udp.nothing(0.3) and status_of(sim, second) == "QUEUED"
    telemetry(udp, mtype=codec.NON)
    got = udp.distinct(2)
    assert [json.loads(m.payload)["method"] for m in got if m.token == b"rp"] == ["b"]
    assert status_of(sim, second) == "DELIVERED"


def test_drx_and_no_mode_always_take_downlinks(sim, udp, clock):
    did = device(sim, profile(sim, powerMode="DRX", pagingTransmissionWindow=1000))
    subscribe(udp, "rpc", b"rp")
    acked(sim, did)
    clock.t += 10**7
    rid = rpc(sim, did, "oneway", persistent=True)[1]["rpcId"]
    udp.distinct(1)
    assert status_of(sim, rid) == "DELIVERED"


def test_attribute_updates_while_asleep_go_out_merged_on_wake(sim, udp, clock):
    did = device(sim, profile(sim, powerMode="PSM", psmActivityTimer=5000))
    first = subscribe(udp, "attributes", b"at")[1]
    assert first.uint(codec.OBSERVE) == 0
    acked(sim, did)
    clock.t += 5001
    sim.set_shared(did, {"a": 1, "b": 2})
    sim.delete_shared(did, ["b"])
    assert udp.nothing(0.3)
    telemetry(udp)
    (note,) = [m for m in udp.distinct(2) if m.token == b"at"]
    assert json.loads(note.payload) == {"a": 1, "deleted": ["b"]}
    assert note.uint(codec.OBSERVE) == 1 and udp.nothing(0.2)
    # a third update merged in loses the deletes queued before it, as in ThingsBoard
    acked(sim, did)
    clock.t += 5001
    sim.set_shared(did, {"a": 1})
    sim.delete_shared(did, ["gone"])
    sim.set_shared(did, {"a": 2, "c": 3})
    telemetry(udp)
    (note,) = [m for m in udp.distinct(2) if m.token == b"at"]
    assert json.loads(note.payload) == {"a": 2, "c": 3}


def test_a_device_setting_overrides_its_profile_and_is_stored(tmp_path, clock):
    sim = make_sim(tmp_path / "d", clock=clock)
    try:
        pid = profile(sim, powerMode="DRX")
        did = device(sim, pid, {"type": "COAP", "powerMode": "PSM", "psmActivityTimer": 3000})
        udp = Udp(sim)
        subscribe(udp, "rpc", b"rp")
        acked(sim, did)
        clock.t += 3001
        rid = rpc(sim, did, persistent=True)[1]["rpcId"]
        assert udp.nothing(0.3) and status_of(sim, rid) == "QUEUED"
        udp.close()
        bad = {"type": "COAP", "powerMode": "NAP"}
        body = {"id": {"id": did}, "deviceData": {"transportConfiguration": bad}}
        assert http(sim, "POST", "/api/device", body)[0] == 400
    finally:
        sim.stop()
    sim = make_sim(tmp_path / "d", clock=clock)
    try:
        dev = http(sim, "GET", "/api/device/" + did)[1]
        conf = dev["deviceData"]["transportConfiguration"]
        assert (conf["powerMode"], conf["psmActivityTimer"]) == ("PSM", 3000)
        p = http(sim, "GET", "/api/deviceProfile/" + pid)[1]
        client = p["profileData"]["transportConfiguration"]["clientSettings"]
        assert client == {"powerMode": "DRX"}
    finally:
        sim.stop()


def test_lightweight_rpcs_to_a_sleeping_device(sim, udp, clock):
    # one-way: answered at once and lost; two-way: waits for the wake-up within its timeout
    did = device(sim, profile(sim, powerMode="PSM", psmActivityTimer=5000))
    subscribe(udp, "rpc", b"rp")
    acked(sim, did)
    clock.t += 5001
    assert rpc(sim, did, "oneway", method="lost") == (200, b"")
    fut = pool.submit(rpc, sim, did, "twoway", method="kept", timeout=60000)
    assert udp.nothing(0.3) and not fut.done()
    telemetry(udp)
    (note,) = [m for m in udp.distinct(2) if m.token == b"rp"]
    assert json.loads(note.payload) == {"id": 1, "method": "kept", "params": None}
    udp.response(udp.request(codec.POST, T + "/rpc/1", b'{"ok":1}', token=b"an"))
    assert fut.result(5) == (200, {"ok": 1})
    log = http(sim, "GET", "/api/tbsim/rpc/" + did)[1]
    assert [(r["method"], r["status"]) for r in log] == [("lost", "SENT"), ("kept", "SUCCESSFUL")]


def test_bad_power_settings_are_refused(sim):
    for client in ({"powerMode": "SLEEP"}, {"powerMode": "PSM", "psmActivityTimer": "1s"}):
        conf = {"type": "COAP", "clientSettings": client}
        body = {"name": "bad", "profileData": {"transportConfiguration": conf}}
        assert http(sim, "POST", "/api/deviceProfile", body)[0] == 400


def test_settings_precedence_and_defaults():
    prof = {"type": "COAP", "clientSettings": {"powerMode": "E_DRX", "psmActivityTimer": 7}}
    assert power.settings(None, prof) == ("E_DRX", 7, 10000)
    dev = {"type": "COAP", "pagingTransmissionWindow": 3}
    assert power.settings(dev, prof) == ("E_DRX", 7, 3)  # the device fills in, profile's mode
    dev = {"type": "COAP", "powerMode": "PSM", "psmActivityTimer": 0}
    assert power.settings(dev, prof) == ("PSM", 10000, 10000)  # its own mode: its own timers
    assert power.settings(None, {"type": "DEFAULT"}) == (None, 10000, 10000)


def test_merge_keeps_only_the_last_deletes():
    queued = power.merge(None, {"a": 1}, ["x"])
    assert queued == ({"a": 1}, ["x"])
    queued = power.merge(queued, {"b": 2}, ["a"])
    assert queued == ({"b": 2}, ["a"])
    assert power.merge(queued, {"a": 3}, []) == ({"b": 2, "a": 3}, [])
