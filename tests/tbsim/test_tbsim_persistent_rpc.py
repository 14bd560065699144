# Persistent RPC on ThingsBoard's REST API (/api/rpc/{oneway|twoway} with "persistent", and
# /api/rpc/persistent/...): the rpcId answer, the Rpc entity, expiry, delivery timeouts and
# retries, DELETE, and the QUEUED ones taken back after a restart.
import json
import uuid

import pytest
from tbsim_helpers import NOW, Udp, http, make_sim, subscribe, until

from tools.tbsim.wire import codec

T = "/api/v1/TOKEN_ONE"


@pytest.fixture
def sim(clocked_sim):
    return clocked_sim


@pytest.fixture
def did(sim):
    return sim.create_device("dev-1", token="TOKEN_ONE")["id"]


def post(sim, did, way="twoway", **body):
    body.setdefault("method", "setGpio")
    body.setdefault("persistent", True)
    return http(sim, "POST", "/api/rpc/%s/%s" % (way, did), body)


def entity(sim, rid):
    return http(sim, "GET", "/api/rpc/persistent/" + rid)[1]


def rpc_note(udp, token):
    # the next RPC notification on token, past retransmissions and 2.02s of older relations
    while True:
        m = udp.recv()
        if m.token == token and m.code == codec.CONTENT:
            return m


def test_rpc_id_at_once_and_the_entity(sim, did):
    extra = {"expirationTime": NOW + 60000, "retries": 2, "additionalInfo": {"who": "test"}}
    status, reply = post(sim, did, params={"pin": 7}, **extra)
    assert status == 200 and list(reply) == ["rpcId"]
    rid = reply["rpcId"]
    assert str(uuid.UUID(rid)) == rid
    got = entity(sim, rid)
    created = got.pop("createdTime")
    assert isinstance(created, int)
    assert got == {
        "id": {"entityType": "RPC", "id": rid},
        "tenantId": {"entityType": "TENANT", "id": "13814000-1dd2-11b2-8080-808080808080"},
        "deviceId": {"entityType": "DEVICE", "id": did},
        "expirationTime": NOW + 60000,
        "request": {
            "id": rid,
            "tenantId": {"entityType": "TENANT", "id": "13814000-1dd2-11b2-8080-808080808080"},
            "deviceId": {"entityType": "DEVICE", "id": did},
            "oneway": False,
            "expirationTime": NOW + 60000,
            "body": {"method": "setGpio", "params": '{"pin":7}'},
            "persisted": True,
            "retries": 2,
        },
        "response": None,
        "status": "QUEUED",
        "additionalInfo": {"who": "test"},
    }
    # the default expiration: now + timeout (10 s unless given)
    rid = post(sim, did)[1]["rpcId"]
    assert entity(sim, rid)["expirationTime"] == NOW + 10000
    rid = post(sim, did, timeout=30000)[1]["rpcId"]
    assert entity(sim, rid)["expirationTime"] == NOW + 30000


def test_list_filter_page_and_errors(sim, did):
    ids = [post(sim, did, method="m%d" % i)[1]["rpcId"] for i in range(3)]
    base = "/api/rpc/persistent/device/%s?pageSize=2&page=" % did
    first = http(sim, "GET", base + "0")[1]
    assert [r["id"]["id"] for r in first["data"]] == ids[:2]
    assert (first["totalElements"], first["totalPages"], first["hasNext"]) == (3, 2, True)
    assert [r["id"]["id"] for r in http(sim, "GET", base + "1")[1]["data"]] == ids[2:]
    queued = http(sim, "GET", base + "0&rpcStatus=QUEUED&sortOrder=DESC")[1]["data"]
    assert [r["id"]["id"] for r in queued] == ids[:0:-1]
    assert http(sim, "GET", base + "0&rpcStatus=SUCCESSFUL")[1]["data"] == []
    assert http(sim, "GET", base + "0&rpcStatus=DELETED")[0] == 500
    assert http(sim, "GET", base + "0&rpcStatus=NOPE")[0] == 400
    assert http(sim, "GET", "/api/rpc/persistent/" + str(uuid.uuid4()))[0] == 404
    log = http(sim, "GET", "/api/tbsim/rpc/" + did)[1]
    assert [r["persistent"] for r in log] == [1, 1, 1]


def test_expiration_time_makes_it_expired(sim, did, clock):
    rid = post(sim, did, expirationTime=NOW + 200)[1]["rpcId"]
    assert entity(sim, rid)["status"] == "QUEUED"
    assert until(lambda: entity(sim, rid)["status"] == "EXPIRED")
    assert sim.call(lambda: sim.core.pending.get(did)) == {}
    # already past its expiration: stored EXPIRED, the caller times out
    assert post(sim, did, expirationTime=NOW - 1)[0] == 408
    expired = http(sim, "GET", "/api/rpc/persistent/device/%s?rpcStatus=EXPIRED" % did)[1]
    assert expired["totalElements"] == 2


def test_unacked_deliveries_count_down_the_retries_to_failed(tmp_path, clock):
    # DRX: never asleep, and the ACK wait is the paging window, here 200 ms
    sim = make_sim(tmp_path / "d", clock=clock, max_retransmit=8)
    udp = Udp(sim)
    try:
        conf = {"type": "COAP", "clientSettings": {"powerMode": "DRX"}}
        conf["clientSettings"]["pagingTransmissionWindow"] = 200
        body = {"name": "drx", "profileData": {"transportConfiguration": conf}}
        pid = http(sim, "POST", "/api/deviceProfile", body)[1]["id"]["id"]
        did = sim.create_device("dev-1", token="TOKEN_ONE", profile_id=pid)["id"]
        rid = post(sim, did, retries=1, expirationTime=NOW + 60000)[1]["rpcId"]
        for token, status in ((b"r1", "TIMEOUT"), (b"r2", "FAILED")):
            subscribe(udp, "rpc", token)
            assert json.loads(rpc_note(udp, token).payload)["method"] == "setGpio"
            assert until(lambda: entity(sim, rid)["status"] == status)  # noqa: B023
        got = entity(sim, rid)
        assert got["response"] == {
            "error": "There was a Timeout and all retry attempts have been exhausted."
            " Retry attempts set: 1"
        }
        assert sim.call(lambda: sim.core.pending.get(did)) == {}
    finally:
        udp.close()
        sim.stop()


def test_delete_removes_it_everywhere(sim, did):
    rid = post(sim, did)[1]["rpcId"]
    assert http(sim, "DELETE", "/api/rpc/persistent/" + rid)[0] == 200
    assert http(sim, "GET", "/api/rpc/persistent/" + rid)[0] == 404
    assert http(sim, "DELETE", "/api/rpc/persistent/" + rid)[0] == 404
    assert sim.call(lambda: sim.core.pending.get(did)) == {}
    udp = Udp(sim)
    try:
        subscribe(udp, "rpc", b"r1")
        assert udp.nothing(0.3)  # nothing pending to push
    finally:
        udp.close()


def test_queued_ones_come_back_after_a_restart(tmp_path, clock):
    sim = make_sim(tmp_path / "d", clock=clock)
    did = sim.create_device("dev-1", token="TOKEN_ONE")["id"]
    udp = Udp(sim)
    try:
        subscribe(udp, "rpc", b"r1")
        sent = post(sim, did, expirationTime=NOW + 60000, method="sent")[1]["rpcId"]
        udp.recv()  # SENT, never ACKed
        assert entity(sim, sent)["status"] == "SENT"
        sim.call(sim.registry.drop_all)  # the device goes away; these wait in the queue
        queued = post(sim, did, expirationTime=NOW + 60000, method="queued")[1]["rpcId"]
        stale = post(sim, did, expirationTime=NOW + 1000, method="stale")[1]["rpcId"]
    finally:
        udp.close()
        sim.stop()
    clock.t += 2000
    sim = make_sim(tmp_path / "d", clock=clock)
    udp = Udp(sim)  # a new port: the restarted tbsim's
    try:
        assert entity(sim, stale)["status"] == "EXPIRED"
        assert entity(sim, sent)["status"] == "SENT"  # not taken back
        subscribe(udp, "rpc", b"r2")
        note = rpc_note(udp, b"r2")
        assert json.loads(note.payload) == {"id": 0, "method": "queued", "params": None}
        udp.ack(note)
        assert until(lambda: entity(sim, queued)["status"] == "DELIVERED")
        udp.response(udp.request(codec.POST, T + "/rpc/0", b'{"r":1}', token=b"an"))
        assert entity(sim, queued)["status"] == "SUCCESSFUL"
        assert udp.nothing(0.2)
    finally:
        udp.close()
        sim.stop()
