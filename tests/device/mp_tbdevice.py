# Device tests of lib/thingsboard/device.py on the unix port: a scripted ThingsBoard peer on
# the fake socket and a virtual clock, so when the keeper re-subscribes is checked exactly.
import asyncio
import json
import sys

import fakes

from coap.client import Client
from coap.codec import (
    ACK,
    CON,
    CONTENT,
    CREATED,
    DELETED,
    EMPTY,
    GET,
    NOT_FOUND,
    OBSERVE,
    POST,
    RST,
    URI_PATH,
)
from coap.message import Message
from thingsboard.device import Device

REFRESH = 300000  # the default observe_refresh


class Peer:
    # ThingsBoard's answers: each observe registration gets a separate CON 2.05 with Observe
    def __init__(self, sock):
        self.sock = sock
        self.regs = []  # (virtual ms, path, token) of every observe registration
        self.mid = 0x7000
        self.replies = []  # (rpc id, body) of every RPC reply the device sent
        self.lose_replies = False
        sock.on_send = self.on_send

    def on_send(self, data):
        m = Message.decode(data)
        if m.code == POST and m.type == CON:  # an RPC reply: lost (RST) or stored (2.01)
            path = [o.decode() for o in m.opts(URI_PATH)]
            self.replies.append((path[-1], m.payload))
            if self.lose_replies:
                self.send(RST, EMPTY, m.mid)
            else:
                self.send(ACK, CREATED, m.mid, m.token)
            return
        if m.code != GET or m.uint(OBSERVE) != 0:
            return
        path = m.opts(URI_PATH)[-1].decode()
        self.regs.append((self.sock.clock.now(), path, m.token))
        self.send(ACK, EMPTY, m.mid)
        self.send(CON, CONTENT, self.next_mid(), m.token, [(OBSERVE, len(self.regs))], b"{}", 5)

    def next_mid(self):
        self.mid += 1
        return self.mid

    def send(self, mtype, code, mid, token=b"", options=(), payload=b"", delay=0):
        self.sock.deliver(Message(mtype, code, mid, token, list(options), payload).encode(), delay)

    def token(self, path):
        return [t for _, p, t in self.regs if p == path][-1]

    def times(self, path):
        return [t for t, p, _ in self.regs if p == path]


async def started(handler=lambda method, params: None):
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    peer = Peer(sock)
    dev = Device(Client(sock), "T0KEN", observe_refresh=REFRESH)
    dev.subscribe_to_all_attributes(lambda data: None)
    dev.set_server_side_rpc_request_handler(handler)
    dev.start()
    await asyncio.sleep_ms(1000)
    assert [p for _, p, _ in peer.regs] == ["attributes", "rpc"], peer.regs
    return clock, peer, dev


async def ended_then_renewed(path, end):
    # the relation on path ends at 1 s (end(peer, token) sends what ends it); the device must
    # register it again at once, not at the periodic refresh 300 s later
    clock, peer, dev = await started()
    token = peer.token(path)
    end(peer, token)
    await asyncio.sleep_ms(10000)
    other = "rpc" if path == "attributes" else "attributes"
    assert len(peer.times(path)) == 2 and peer.times(path)[1] < 10000, peer.regs
    assert peer.token(path) == token  # renewed on the same token
    assert len(peer.times(other)) == 1  # the other relation is left alone
    assert all(o.active for o in dev._subs)
    dev.stop()


def deleted(peer, token):
    # ThingsBoard ends a relation with a 2.02 carrying Observe
    peer.send(CON, DELETED, peer.next_mid(), token, [(OBSERVE, 99)])


def not_found(peer, token):
    peer.send(CON, NOT_FOUND, peer.next_mid(), token)


async def test_attributes_relation_ended_by_202_is_renewed_at_once():
    await ended_then_renewed("attributes", deleted)


async def test_attributes_relation_ended_by_an_error_is_renewed_at_once():
    await ended_then_renewed("attributes", not_found)


async def test_rpc_relation_ended_by_202_is_renewed_at_once():
    await ended_then_renewed("rpc", deleted)


async def test_attributes_relation_reset_on_renewal_is_retried_after_backoff():
    # an RST of the re-registration: the device backs off 2 s and registers again
    clock, peer, dev = await started()
    token = peer.token("attributes")
    on_send = peer.on_send

    def reset_once(data):
        m = Message.decode(data)
        if m.code == GET and m.token == token and len(peer.regs) == 2:
            peer.regs.append((clock.now(), "attributes", token))
            peer.send(RST, EMPTY, m.mid)
            return
        on_send(data)

    peer.sock.on_send = reset_once
    deleted(peer, token)
    await asyncio.sleep_ms(10000)
    times = peer.times("attributes")
    assert len(times) == 3 and times[2] - times[1] >= 2000 and times[2] < 10000, peer.regs
    assert all(o.active for o in dev._subs)
    dev.stop()


async def test_reconnected_renews_both_relations_at_once():
    clock, peer, dev = await started()
    dev.reconnected()
    await asyncio.sleep_ms(1000)
    assert len(peer.times("attributes")) == 2 and len(peer.times("rpc")) == 2, peer.regs
    assert all(o.active for o in dev._subs) and dev.stats["resubscribe"] == 2
    dev.stop()


async def test_silent_relations_are_renewed_after_observe_refresh():
    # no notification for observe_refresh: the server may have forgotten us, so renew
    clock, peer, dev = await started()
    await asyncio.sleep_ms(REFRESH - 10000)
    assert len(peer.regs) == 2, peer.regs
    await asyncio.sleep_ms(20000)
    assert len(peer.times("attributes")) == 2 and len(peer.times("rpc")) == 2, peer.regs
    dev.stop()


def rpc(peer, rpc_id, method="m", params=None):
    body = json.dumps({"id": rpc_id, "method": method, "params": params}).encode()
    token = peer.token("rpc")
    peer.send(CON, CONTENT, peer.next_mid(), token, [(OBSERVE, peer.next_mid())], body)


async def test_repeated_rpc_runs_once_and_its_lost_reply_is_sent_again():
    runs = []
    clock, peer, dev = await started(lambda method, params: runs.append(method) or len(runs))
    peer.lose_replies = True
    rpc(peer, 1)
    await asyncio.sleep_ms(500)
    assert runs == ["m"] and peer.replies == [("1", b'{"result": 1}')], peer.replies
    peer.lose_replies = False
    rpc(peer, 1)  # ThingsBoard sends it again: our reply never reached it
    await asyncio.sleep_ms(500)
    assert runs == ["m"] and peer.replies == [("1", b'{"result": 1}')] * 2
    assert dev.stats["rpc_duplicate"] == 1
    rpc(peer, 1)  # just after our reply was confirmed: the reply once more, not a second run
    await asyncio.sleep_ms(500)
    assert runs == ["m"] and peer.replies == [("1", b'{"result": 1}')] * 3
    rpc(peer, 1)  # ... and only once
    await asyncio.sleep_ms(500)
    assert runs == ["m"] and len(peer.replies) == 3
    await asyncio.sleep_ms(dev.rpc_late_ms)
    rpc(peer, 1)  # later, the same id is a new RPC (ThingsBoard restarted)
    await asyncio.sleep_ms(500)
    assert runs == ["m", "m"] and peer.replies[-1] == ("1", b'{"result": 2}')
    dev.stop()


async def test_repeat_while_running_is_dropped_and_answered_once():
    async def slow(method, params):
        runs.append(method)
        await asyncio.sleep_ms(1000)
        return "done"

    runs = []
    clock, peer, dev = await started(slow)
    rpc(peer, 3, "slow")
    await asyncio.sleep_ms(100)
    rpc(peer, 3, "slow")
    await asyncio.sleep_ms(2000)
    assert runs == ["slow"] and peer.replies == [("3", b'{"result": "done"}')], (
        runs,
        peer.replies,
    )
    assert dev.stats["rpc_duplicate"] == 1
    dev.stop()


async def test_same_id_with_other_content_or_much_later_is_a_new_rpc():
    runs = []
    clock, peer, dev = await started(lambda method, params: runs.append((method, params)))
    peer.lose_replies = True  # nothing confirmed: every id stays remembered
    rpc(peer, 5, "a")
    await asyncio.sleep_ms(500)
    rpc(peer, 5, "b")  # ids restart at 0 when the server restarts: another RPC
    await asyncio.sleep_ms(500)
    assert runs == [("a", None), ("b", None)]
    await asyncio.sleep_ms(60000)
    rpc(peer, 5, "a")  # a minute later it is no repeat any more
    await asyncio.sleep_ms(500)
    assert runs == [("a", None), ("b", None), ("a", None)] and dev.stats["rpc_duplicate"] == 0
    dev.stop()


async def test_rpcs_recalled_after_a_power_cut_are_answered_never_run_again():
    # a sleeping board keeps rpcs() on flash (sleep.py): after a power cut the server sends
    # again what it has no reply to; the next run answers, and runs nothing
    async def handler(method, params):
        runs.append(method)
        if method == "stuck":
            await asyncio.sleep_ms(3600000)  # the power goes while this runs
        return 41

    runs = []
    journal = []
    clock, peer, dev = await started(handler)
    dev.on_rpc_change = journal.append
    peer.lose_replies = True  # the reply to 7 never reaches the server
    rpc(peer, 7, "done")
    rpc(peer, 8, "stuck")
    await asyncio.sleep_ms(500)
    assert runs == ["done", "stuck"] and dev.rpc_busy()
    kept = journal[-1]
    dev.stop()

    runs.clear()
    clock, peer, dev = await started(handler)
    dev.recall_rpcs(kept)
    rpc(peer, 7, "done")
    rpc(peer, 8, "stuck")
    await asyncio.sleep_ms(500)
    assert runs == [] and not dev.rpc_busy(), runs
    interrupted = b'{"error": "interrupted by a reset, not run again"}'
    assert sorted(peer.replies) == [("7", b'{"result": 41}'), ("8", interrupted)], peer.replies
    assert [r[3] for r in dev.rpcs()] == [3, 3]  # both confirmed now
    dev.stop()


async def refused_everything(code, minutes=10):
    # ThingsBoard answers `code` to every request while the device's callers go on (telemetry
    # every second, both subscriptions) -> (requests before the first answer, the later ones
    # at their virtual ms, the log)
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    logged = []

    def refuse(data):
        m = Message.decode(data)
        if m.type == CON and m.code:
            sock.deliver(Message(ACK, code, m.mid, m.token).encode())

    sock.on_send = refuse
    dev = Device(Client(sock), "WR0NG", REFRESH, lambda *a: logged.append(" ".join(map(str, a))))
    dev.subscribe_to_all_attributes(lambda data: None)
    dev.set_server_side_rpc_request_handler(lambda method, params: None)
    dev.start()

    async def telemetry_every_second():
        while True:
            try:
                await dev.send_telemetry({"n": 1})
            except Exception:
                pass
            await asyncio.sleep_ms(1000)

    task = asyncio.create_task(telemetry_every_second())
    await asyncio.sleep_ms(minutes * 60000)
    task.cancel()
    dev.stop()
    sent = [(t, Message.decode(d)) for t, d in sock.sent]
    requests = [t for t, m in sent if m.type == CON and m.code]
    first = [t for t in requests if t < 1000]
    assert 2 <= len(first) <= 3, sent  # what went out before the first answer
    return first, requests[len(first) :], logged


async def test_a_refused_token_stops_all_traffic_but_a_slow_try():
    # a wrong token (4.01): one request at a time, 30 s apart and then further
    first, later, logged = await refused_everything(129)
    assert 3 <= len(later) <= 6, later  # 30 s, 60 s, 120 s ... apart
    assert all(b - a >= 30000 for a, b in zip(later, later[1:])), later
    assert later[0] >= 30000
    assert any("refuses the access token (4.01)" in line for line in logged), logged


async def test_a_device_over_its_rate_limit_gets_one_try_at_a_time():
    # 5.00 to everything (ThingsBoard's rate limits): one request at a time, 2 s apart, then
    # further up to a minute: about one a minute once it has backed off
    first, later, logged = await refused_everything(160)
    assert 8 <= len(later) <= 16, later
    assert all(b - a >= 2000 for a, b in zip(later, later[1:])), later
    assert len([t for t in later if t >= 300000]) <= 6  # the last five minutes
    assert any("refuses requests for now (5.00" in line for line in logged), logged


async def test_a_token_taken_again_ends_the_hold():
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    logged = []
    refusing = [True]

    def answer(data):
        m = Message.decode(data)
        if m.type == CON and m.code == POST:
            sock.deliver(Message(ACK, 129 if refusing[0] else CREATED, m.mid, m.token).encode())

    sock.on_send = answer
    dev = Device(Client(sock), "T0KEN", REFRESH, lambda *a: logged.append(" ".join(map(str, a))))
    dev.client.start()
    for _ in range(2):
        try:
            await dev.send_telemetry({"n": 1})
        except Exception as e:
            assert getattr(e, "code", None) == 129, e
    assert len(sock.sent) == 1  # the second was held back
    refusing[0] = False  # the credentials were fixed on the server
    await asyncio.sleep_ms(46000)  # past the first slow try's time (30 s and up to half more)
    await dev.send_telemetry({"n": 2})
    await dev.send_telemetry({"n": 3})
    assert len(sock.sent) == 3 and "the server takes requests again" in logged[-1]


async def test_a_refused_subscription_is_retried_after_growing_waits():
    # a server that answers 4.00 to every registration (and takes everything else): the keeper
    # waits 2 s, 4 s ... up to a minute between tries (the refusals themselves must not cut
    # the waits short)
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)

    def refuse(data):
        m = Message.decode(data)
        if m.type == CON and m.code == GET:
            sock.deliver(Message(ACK, 128, m.mid, m.token).encode())

    sock.on_send = refuse
    dev = Device(Client(sock), "T0KEN", REFRESH)
    dev.subscribe_to_all_attributes(lambda data: None)
    dev.start()
    await asyncio.sleep_ms(600000)  # ten minutes
    dev.stop()
    tries = [t for t, d in sock.sent if Message.decode(d).code == GET]
    assert 10 <= len(tries) <= 16, tries  # 2 s, 4 s ... and then a minute apart
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert gaps[0] >= 2000 and all(g >= 2000 for g in gaps), gaps


def unloaded(name):
    # thingsboard.<name> as before its first import (an earlier test may have loaded it)
    import thingsboard

    sys.modules.pop("thingsboard." + name, None)
    thingsboard.__dict__.pop(name, None)
    return "thingsboard." + name


async def test_named_errors_are_loaded_by_the_first_failed_request():
    # a healthy device never holds thingsboard.errors in RAM; a refusal still gets its name
    errors = unloaded("errors")
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    codes = [CREATED, 128]

    def answer(data):
        m = Message.decode(data)
        if m.type == CON and m.code == POST:
            sock.deliver(Message(ACK, codes.pop(0), m.mid, m.token).encode())

    sock.on_send = answer
    dev = Device(Client(sock), "T0KEN", REFRESH)
    dev.client.start()
    await dev.send_telemetry({"n": 1})
    assert errors not in sys.modules
    try:
        await dev.send_telemetry({"n": 2})
        raise AssertionError("4.00 was taken")
    except sys.modules[errors].BadRequest as e:
        assert e.code == 128 and "bad request" in str(e), e


def test_the_json_payload_code_loads_only_for_a_json_device():
    # a protobuf device (any payload format given) never holds jsonpayload in RAM
    jsonpayload = unloaded("jsonpayload")
    sock = fakes.FakeSocket(fakes.install())
    Device(Client(sock), "T0KEN", REFRESH, payload=object())
    assert jsonpayload not in sys.modules
    json_device = Device(Client(sock), "T0KEN", REFRESH)
    assert json_device.payload is sys.modules[jsonpayload]
