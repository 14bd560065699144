# Device tests of lib/thingsboard/device.py on the unix port: a scripted ThingsBoard peer on
# the fake socket and a virtual clock, so when the keeper re-subscribes is checked exactly.
import asyncio

import fakes

from coap.client import Client
from coap.codec import ACK, CON, CONTENT, DELETED, EMPTY, GET, NOT_FOUND, OBSERVE, RST
from coap.message import Message
from thingsboard.device import Device

REFRESH = 300000  # the default observe_refresh


class Peer:
    # ThingsBoard's answers: each observe registration gets a separate CON 2.05 with Observe
    def __init__(self, sock):
        self.sock = sock
        self.regs = []  # (virtual ms, path, token) of every observe registration
        self.mid = 0x7000
        sock.on_send = self.on_send

    def on_send(self, data):
        m = Message.decode(data)
        if m.code != GET or m.uint(OBSERVE) != 0:
            return
        path = m.opts(11)[-1].decode()
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


async def started():
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    peer = Peer(sock)
    dev = Device(Client(sock), "T0KEN", observe_refresh=REFRESH)
    dev.subscribe_to_all_attributes(lambda data: None)
    dev.set_server_side_rpc_request_handler(lambda method, params: None)
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
