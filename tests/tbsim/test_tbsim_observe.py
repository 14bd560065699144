# Observe as in transport reference §3: snapshots, flat notifications, counters, types, pacing,
# the cancel paths (un-ACKed CON, RST, Observe=1, replacement, server side) and RPC delivery.
import asyncio
import concurrent.futures
import json
import subprocess

import aiocoap
import pytest
from tbsim_helpers import Udp, http, make_sim, subscribe, until

from tools.tbsim import RpcTimeout
from tools.tbsim.wire import codec

T = "/api/v1/TOKEN_ONE"
pool = concurrent.futures.ThreadPoolExecutor(4)


def relations(sim):
    return sim.call(lambda: sorted((r.kind, r.token) for r in sim.registry.relations.values()))


def test_attribute_subscription_snapshot_updates_and_deletes(sim, udp, device):
    sim.set_shared(device["id"], {"sharedStr": "value", "sharedLong": 72, "sharedDbl": 41.0})
    req, first = subscribe(udp, "attributes", b"ob1")
    assert (first.type, first.mid, first.code) == (codec.ACK, req.mid, codec.CONTENT)
    assert first.uint(codec.OBSERVE) == 0 and first.uint(codec.CONTENT_FORMAT) == 50
    assert json.loads(first.payload) == {"sharedStr": "value", "sharedLong": 72, "sharedDbl": 41.0}
    got = []
    for change in (
        lambda: sim.set_shared(device["id"], {"sharedLong": 73, "sharedDbl": 42.0}),
        lambda: sim.delete_shared(device["id"], ["sharedStr", "never-set"]),
        lambda: sim.set_shared(device["id"], {"k": {"nested": [1]}}),
    ):
        change()
        got += udp.distinct(1)  # ACKed before the next change, so none is replaced
    assert [m.payload for m in got] == [
        b'{"sharedLong":73,"sharedDbl":42.0}',
        b'{"deleted":["sharedStr","never-set"]}',
        b'{"k":{"nested":[1]}}',
    ]
    assert [m.uint(codec.OBSERVE) for m in got] == [1, 2, 3]
    assert all(m.type == codec.CON and m.token == b"ob1" and m.code == codec.CONTENT for m in got)
    assert udp.nothing(0.4)


def test_empty_snapshot_and_random_mids(sim, udp, device):
    _, first = subscribe(udp, "attributes", b"ob1")
    assert first.payload == b"{}"
    for i in range(6):
        sim.set_shared(device["id"], {"i": i})
        (m,) = udp.distinct(1)
        assert m.payload == b'{"i":%d}' % i
        mids = getattr(udp, "mids", []) + [m.mid]
        udp.mids = mids
    steps = {(b - a) & 0xFFFF for a, b in zip(udp.mids, udp.mids[1:])}
    assert steps != {1}  # not a counter


def test_non_subscription_gets_non_notifications(sim, udp, device):
    req, first = subscribe(udp, "attributes", b"nn", mtype=codec.NON)
    assert (first.type, first.uint(codec.OBSERVE)) == (codec.NON, 0)
    sim.set_shared(device["id"], {"a": 1})
    m = udp.recv()
    assert (m.type, m.uint(codec.OBSERVE), m.payload) == (codec.NON, 1, b'{"a":1}')
    assert udp.nothing(0.5)  # never retransmitted, never times out
    assert relations(sim) == [("attributes", b"nn")]


def test_one_con_in_flight_and_newer_replaces_queued(tmp_path):
    sim = make_sim(tmp_path / "d", ack_timeout=1.0)
    did = sim.create_device("dev-1", token="TOKEN_ONE")["id"]
    udp = Udp(sim)
    try:
        subscribe(udp, "attributes", b"ob")
        for v in (1, 2, 3):
            sim.set_shared(did, {"a": v})
        m1 = udp.recv()
        assert m1.payload == b'{"a":1}'
        assert udp.nothing(0.3)  # the others wait for the ACK
        udp.ack(m1)
        m3 = udp.recv()
        assert (m3.payload, m3.uint(codec.OBSERVE)) == (b'{"a":3}', 2)  # {"a":2} was dropped
        udp.ack(m3)
        assert udp.nothing(0.3)
    finally:
        udp.close()
        sim.stop()


def test_unacked_notification_cancels_all_relations_of_that_peer(sim, udp, device):
    other = Udp(sim)
    try:
        subscribe(udp, "attributes", b"at")
        subscribe(udp, "rpc", b"rp")
        other_req = other.request(
            codec.GET, T + "/attributes", token=b"o1", opts=[(codec.OBSERVE, 0)]
        )
        other.response(other_req)  # replaces udp's attribute relation: 2.02 to udp
        deleted = udp.recv()
        assert (deleted.code, deleted.token, deleted.uint(codec.OBSERVE)) == (
            codec.DELETED,
            b"at",
            0,
        )
        udp.ack(deleted)
        subscribe(udp, "attributes", b"a2")  # and back again: other gets 2.02
        other.ack(other.recv())
        sim.set_shared(device["id"], {"x": 1})
        copies = udp.drain(0.8)
        assert len({m.mid for m in copies}) == 1
        assert len(copies) == 1 + sim.params.max_retransmit
        assert relations(sim) == []  # attributes and rpc of that IP:port
        fut = pool.submit(sim.rpc, device["id"], "m", None, 0.5)
        with pytest.raises(RpcTimeout):
            fut.result()
        assert udp.nothing(0.2)
    finally:
        other.close()


def test_rst_cancels_the_relation(sim, udp, device):
    subscribe(udp, "attributes", b"ob")
    sim.set_shared(device["id"], {"a": 1})
    udp.rst(udp.recv())
    assert until(lambda: relations(sim) == [])
    sim.set_shared(device["id"], {"a": 2})
    assert udp.nothing(0.4)


def test_rst_on_non_notification_cancels_too(sim, udp, device):
    subscribe(udp, "attributes", b"nn", mtype=codec.NON)
    sim.set_shared(device["id"], {"a": 1})
    udp.rst(udp.recv())
    assert until(lambda: relations(sim) == [])


def test_observe_1_cancels_with_only_the_deferred_ack(sim, udp, device):
    subscribe(udp, "attributes", b"ob")
    req = udp.request(codec.GET, T + "/attributes", token=b"ob", opts=[(codec.OBSERVE, 1)])
    ack = udp.recv()
    assert (ack.type, ack.code, ack.mid) == (codec.ACK, codec.EMPTY, req.mid)
    assert relations(sim) == []
    sim.set_shared(device["id"], {"a": 1})
    assert udp.nothing(0.4)


def test_observe_on_claim_is_an_attribute_subscription(sim, udp, device):
    sim.set_shared(device["id"], {"a": 1})
    _, first = subscribe(udp, "claim", b"cl")
    assert (first.code, first.uint(codec.OBSERVE), first.payload) == (
        codec.CONTENT,
        0,
        b'{"a":1}',
    )
    assert relations(sim) == [("attributes", b"cl")]


def test_deleting_the_device_sends_2_02_on_every_relation(sim, udp, device):
    subscribe(udp, "attributes", b"at")
    subscribe(udp, "rpc", b"rp")
    assert http(sim, "DELETE", "/api/device/" + device["id"])[0] == 200
    got = udp.distinct(2)
    assert sorted((m.code, m.token, m.uint(codec.OBSERVE)) for m in got) == [
        (codec.DELETED, b"at", 0),
        (codec.DELETED, b"rp", 0),
    ]


def test_rpc_subscription_and_two_way_rpc(sim, udp, device):
    req = udp.request(codec.GET, T + "/rpc", token=b"rp", opts=[(codec.OBSERVE, 0)])
    valid = udp.recv()
    # a separate CON, no empty ACK, no payload, Observe 0
    assert (valid.type, valid.code, valid.token) == (codec.CON, codec.VALID, b"rp")
    assert valid.mid != req.mid and valid.payload == b"" and valid.uint(codec.OBSERVE) == 0
    udp.ack(valid)
    for rpc_id in (0, 1):
        fut = pool.submit(
            http,
            sim,
            "POST",
            "/api/rpc/twoway/" + device["id"],
            {"method": "setGpio", "params": {"pin": 26, "value": 1}},
        )
        (m,) = udp.distinct(1)
        assert m.uint(codec.OBSERVE) == rpc_id + 1
        assert json.loads(m.payload) == {
            "id": rpc_id,
            "method": "setGpio",
            "params": {"pin": 26, "value": 1},
        }
        reply = udp.request(codec.POST, T + "/rpc/%d" % rpc_id, b'{"ok":true}')
        assert udp.response(reply).code == codec.CREATED
        assert fut.result(5) == (200, {"ok": True})
    log = http(sim, "GET", "/api/tbsim/rpc/" + device["id"])[1]
    assert [(r["rpc_id"], r["status"], r["response"]) for r in log] == [
        (0, "SUCCESSFUL", {"ok": True}),
        (1, "SUCCESSFUL", {"ok": True}),
    ]


def test_pending_rpcs_are_resent_on_resubscribe(tmp_path):
    sim = make_sim(tmp_path / "d", ack_timeout=1.0)
    udp = Udp(sim)
    try:
        pending_rpcs(sim, udp, sim.create_device("dev-1", token="TOKEN_ONE"))
    finally:
        udp.close()
        sim.stop()


def pending_rpcs(sim, udp, device):
    did = device["id"]
    first = pool.submit(sim.rpc, did, "a", None, 10)
    second = pool.submit(sim.rpc, did, "b", None, 10)
    assert until(lambda: sim.call(lambda: len(sim.core.pending.get(did, {}))) == 2)
    req = udp.request(codec.GET, T + "/rpc", token=b"r1", opts=[(codec.OBSERVE, 0)])
    valid = udp.recv()
    assert (valid.code, valid.token) == (codec.VALID, req.token)
    assert udp.nothing(0.2)  # RPCs wait behind the un-ACKed 2.03
    udp.ack(valid)
    (m,) = udp.distinct(1)
    assert json.loads(m.payload)["id"] == 1  # only the newest of the queued ones
    assert udp.nothing(0.3)
    # re-subscribe with a new token: 2.02 on the old one, then pending RPCs again
    udp.request(codec.GET, T + "/rpc", token=b"r2", opts=[(codec.OBSERVE, 0)])
    got = udp.distinct(3)
    assert [(m.token, m.code) for m in got] == [
        (b"r1", codec.DELETED),
        (b"r2", codec.VALID),
        (b"r2", codec.CONTENT),
    ]
    assert json.loads(got[2].payload)["id"] == 1
    udp.response(udp.request(codec.POST, T + "/rpc/1", b'{"r":"b"}'))
    assert second.result(5) == {"r": "b"}
    udp.request(codec.GET, T + "/rpc", token=b"r3", opts=[(codec.OBSERVE, 0)])
    got = udp.distinct(3)
    assert json.loads(got[2].payload) == {"id": 0, "method": "a", "params": None}
    udp.response(udp.request(codec.POST, T + "/rpc/0", b'{"r":"a"}'))
    assert first.result(5) == {"r": "a"}


def test_one_way_rpc_returns_on_delivery(sim, udp, device):
    subscribe(udp, "rpc", b"rp")
    fut = pool.submit(http, sim, "POST", "/api/rpc/oneway/" + device["id"], {"method": "blink"})
    m = udp.recv()
    assert not fut.done()  # not delivered until the device ACKs
    udp.ack(m)
    assert fut.result(5) == (200, b"")


def test_aiocoap_observer(sim, device):
    did = device["id"]
    sim.set_shared(did, {"a": 0})

    async def run():
        ctx = await aiocoap.Context.create_client_context()
        try:
            uri = "coap://127.0.0.1:%d%s/attributes" % (sim.coap_port, T)
            req = ctx.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
            first = await asyncio.wait_for(req.response, 5)
            got = [(first.opt.observe, first.payload)]
            for v in (1, 2):
                await asyncio.get_running_loop().run_in_executor(
                    None, sim.set_shared, did, {"a": v}
                )
                m = await asyncio.wait_for(req.observation.__aiter__().__anext__(), 5)
                got.append((m.opt.observe, m.payload))
            req.observation.cancel()
            return got
        finally:
            await ctx.shutdown()

    assert asyncio.run(run()) == [(0, b'{"a":0}'), (1, b'{"a":1}'), (2, b'{"a":2}')]


def test_libcoap_observer(sim, device):
    did = device["id"]
    proc = subprocess.Popen(
        [
            "coap-client-notls",
            "-s",
            "3",
            "-m",
            "get",
            "coap://127.0.0.1:%d%s/attributes" % (sim.coap_port, T),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert until(lambda: relations(sim) != [])
        sim.set_shared(did, {"b": 1})
        out = proc.communicate(timeout=10)[0].decode()
    finally:
        proc.kill()
    assert "{}" in out and '{"b":1}' in out


def test_cancelled_relation_stops_retransmitting(sim, udp, device):
    # the old relation's un-ACKed notification must not time out and take a new one with it
    subscribe(udp, "attributes", b"a1")
    sim.set_shared(device["id"], {"x": 1})
    assert udp.recv().token == b"a1"  # never ACKed
    udp.request(codec.GET, T + "/attributes", token=b"a1", opts=[(codec.OBSERVE, 1)])
    subscribe(udp, "attributes", b"a2")
    late = [m for m in udp.drain(0.8) if m.code != codec.EMPTY]
    assert all(m.token == b"a1" for m in late) and len(late) <= sim.params.max_retransmit
    assert relations(sim) == [("attributes", b"a2")]
    sim.set_shared(device["id"], {"x": 2})
    (m,) = udp.distinct(1)
    assert (m.token, m.payload) == (b"a2", b'{"x":2}')


def test_two_cons_in_flight_to_a_peer_never_share_a_mid(tmp_path):
    # A notification's random MID and the per-peer counter of separate responses pick apart,
    # skipping a MID that waits for its ACK (Californium keeps outbound exchanges by peer and
    # MID). Sharing one, the device's ACK completed the other CON, and the notification that
    # never completed held back every later RPC: a lost RPC in a loaded test run.
    sim = make_sim(tmp_path / "d", ack_timeout=1.0)  # un-ACKed CONs last the test out
    udp = Udp(sim)
    try:
        mids_apart(sim, udp, sim.create_device("dev-1", token="TOKEN_ONE")["id"])
    finally:
        udp.close()
        sim.stop()


def mids_apart(sim, udp, did):
    t, peer = sim.transport, udp.sock.getsockname()
    subscribe(udp, "rpc", b"rp")

    def first(token):  # the first message on token, retransmissions of others skipped
        return next(m for m in iter(udp.recv, None) if m.token == token)

    def answer(rpc_id):
        udp.response(udp.request(codec.POST, T + "/rpc/%d" % rpc_id, b'{"ok":1}'))

    # a separate response waits for its ACK; the notification's first draw is its MID
    resp = first(udp.request(codec.POST, T + "/telemetry", b'{"t":1}').token)
    assert resp.type == codec.CON
    draws = [resp.mid]
    randrange = t.rng.randrange
    sim.call(setattr, t.rng, "randrange", lambda n: draws.pop() if draws else randrange(n))
    rpc = pool.submit(sim.rpc, did, "a", None, 5)
    note = first(b"rp")
    assert note.mid != resp.mid and not draws
    udp.ack(resp)
    # the counter comes to the notification's MID while it waits for its ACK
    sim.call(t.mids.__setitem__, peer, note.mid)
    resp = first(udp.request(codec.POST, T + "/telemetry", b'{"t":2}').token)
    assert resp.mid == (note.mid + 1) & 0xFFFF
    udp.ack(resp)
    udp.ack(note)
    answer(0)
    assert rpc.result(5) == {"ok": 1}
    # both were acknowledged: the next RPC goes out at once
    rpc = pool.submit(sim.rpc, did, "b", None, 5)
    (m,) = udp.distinct(1)
    assert json.loads(m.payload)["id"] == 1
    answer(1)
    assert rpc.result(5) == {"ok": 1}
    assert sim.call(lambda: [k for k in t.outgoing if k[0] == peer]) == []
