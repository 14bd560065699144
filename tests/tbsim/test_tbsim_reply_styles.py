# Reply types of transport reference §2.2 and §13, seen datagram by datagram: separate CON
# responses without an empty ACK, empty ACK then CON when slow, at once on /fw, piggy-backed
# errors, --piggyback mode, NON for NON, and duplicates answered from the cache.
import asyncio
import time

import pytest
from tbsim_helpers import Udp, make_sim

from tools.tbsim.wire import codec

T = "/api/v1/TOKEN_ONE"


class Counting:
    # client-side RPC handler that counts calls and can take its time
    def __init__(self):
        self.calls = 0

    async def __call__(self, device, method, params):
        self.calls += 1
        await asyncio.sleep(float(params or 0))
        return {"slept": params}


@pytest.fixture
def handler():
    return Counting()


@pytest.fixture(params=[False, True], ids=["tb", "piggyback"])
def rig(request, tmp_path, handler):
    sim = make_sim(tmp_path / "d", rpc_handler=handler, piggyback=request.param)
    sim.create_device("dev-1", token="TOKEN_ONE")
    udp = Udp(sim)
    yield sim, udp
    udp.close()
    sim.stop()


def rpc_call(udp, seconds, mtype=codec.CON):
    body = ('{"method":"wait","params":%s}' % seconds).encode()
    return udp.request(codec.POST, T + "/rpc", body, mtype=mtype, token=b"\x01\x02")


def test_fast_reply(rig):
    sim, udp = rig
    req = udp.request(codec.POST, T + "/telemetry", b"{a:1}")
    first = udp.recv()
    assert first.code == codec.CREATED and first.token == req.token
    if sim.params.piggyback:
        assert (first.type, first.mid) == (codec.ACK, req.mid)
    else:  # a separate CON with its own MID and no empty ACK, before or after
        assert first.type == codec.CON and first.mid != req.mid
        udp.ack(first)
    assert udp.nothing(0.6)


def test_separate_response_is_retransmitted_until_acked(tmp_path):
    sim = make_sim(tmp_path / "d")
    sim.create_device("dev-1", token="TOKEN_ONE")
    udp = Udp(sim)
    try:
        req = udp.request(codec.POST, T + "/telemetry", b"{a:1}")
        copies = udp.drain(0.8)
        assert all(m.mid == copies[0].mid and m.token == req.token for m in copies)
        assert [m.type for m in copies] == [codec.CON] * (1 + sim.params.max_retransmit)
    finally:
        udp.close()
        sim.stop()


def test_slow_reply_gets_empty_ack_first(rig, handler):
    sim, udp = rig
    req = rpc_call(udp, 0.6)
    t0 = time.monotonic()
    ack = udp.recv()
    assert (ack.type, ack.code, ack.mid) == (codec.ACK, codec.EMPTY, req.mid)
    assert time.monotonic() - t0 >= sim.params.piggyback_timeout - 0.05
    resp = udp.recv()
    assert (resp.type, resp.code, resp.token) == (codec.CON, codec.CONTENT, req.token)
    assert resp.payload == b'{"slept":0.6}'
    udp.ack(resp)


def test_errors_are_piggybacked(rig):
    _, udp = rig
    req = udp.request(codec.POST, "/api/v1/WRONG/telemetry", b"{}")
    resp = udp.recv()
    assert (resp.type, resp.mid, resp.code) == (codec.ACK, req.mid, codec.UNAUTHORIZED)


def test_ota_acks_at_once_then_separate_con(rig):
    sim, udp = rig
    req = udp.request(codec.GET, "/fw/TOKEN_ONE")
    if sim.params.piggyback:  # like a plain CoAP server: the reply rides in the ACK
        resp = udp.recv()
        assert (resp.type, resp.code, resp.mid) == (codec.ACK, codec.NOT_FOUND, req.mid)
        return
    ack = udp.recv(0.2)  # well before the piggyback timeout
    assert (ack.type, ack.code, ack.mid) == (codec.ACK, codec.EMPTY, req.mid)
    resp = udp.recv()
    assert (resp.type, resp.code, resp.token) == (codec.CON, codec.NOT_FOUND, req.token)
    udp.ack(resp)


def test_non_request_gets_non_response(rig):
    _, udp = rig
    req = udp.request(codec.POST, T + "/telemetry", b"{a:1}", mtype=codec.NON)
    resp = udp.recv()
    assert (resp.type, resp.code, resp.token) == (codec.NON, codec.CREATED, req.token)
    assert udp.nothing(0.5)


def test_duplicate_after_acked_response_gets_empty_ack_only(rig, handler):
    sim, udp = rig
    req = rpc_call(udp, 0)
    resp = udp.recv()
    if resp.type == codec.CON:
        udp.ack(resp)
    udp.send(req)  # a retransmission, as aiocoap sends when it sees no ACK
    again = udp.recv()
    if sim.params.piggyback:
        assert (again.type, again.mid, again.payload) == (codec.ACK, req.mid, resp.payload)
    else:
        assert (again.type, again.code, again.mid) == (codec.ACK, codec.EMPTY, req.mid)
    assert udp.nothing(0.5)
    assert handler.calls == 1


def test_duplicate_before_ack_of_response_resends_it(tmp_path, handler):
    # the response's own retransmission would come only after 30 s: what arrives at once
    # answers the duplicate
    sim = make_sim(tmp_path / "d", rpc_handler=handler, ack_timeout=30.0)
    sim.create_device("dev-1", token="TOKEN_ONE")
    udp = Udp(sim)
    try:
        req = rpc_call(udp, 0)
        resp = udp.recv()
        udp.send(req)
        ack, again = udp.recv(), udp.recv()
        assert (ack.type, ack.code, ack.mid) == (codec.ACK, codec.EMPTY, req.mid)
        assert (again.type, again.mid, again.payload) == (codec.CON, resp.mid, resp.payload)
        udp.ack(resp)
        assert handler.calls == 1
    finally:
        udp.close()
        sim.stop()


def test_client_rpc_without_answer_in_sync_timeout_gets_only_the_ack(tmp_path, handler):
    sim = make_sim(tmp_path / "d", rpc_handler=handler, sync_timeout=0.4)
    sim.create_device("dev-1", token="TOKEN_ONE")
    udp = Udp(sim)
    try:
        req = rpc_call(udp, 2)
        ack = udp.recv()
        assert (ack.type, ack.code, ack.mid) == (codec.ACK, codec.EMPTY, req.mid)
        assert udp.nothing(0.8)
    finally:
        udp.close()
        sim.stop()


def test_duplicate_before_reply_and_ack_is_ignored(rig, handler):
    sim, udp = rig
    req = rpc_call(udp, 0.6)
    udp.send(req)
    first = udp.recv()  # nothing for the duplicate: the first datagram is the deferred ACK
    assert (first.type, first.code, first.mid) == (codec.ACK, codec.EMPTY, req.mid)
    resp = udp.recv()
    assert resp.code == codec.CONTENT
    udp.ack(resp)
    assert handler.calls == 1
