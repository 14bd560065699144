# Helpers for the tbsim tests (a unique module name, so "from conftest import" never picks up
# another folder's conftest): tbsim in-process on ephemeral ports with a temp data dir, and
# clients: a raw UDP socket with the project codec (to see types, MIDs and ACKs), aiocoap,
# libcoap's coap-client-notls and urllib for the admin API.
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.tbsim import TbSim  # noqa: E402
from tools.tbsim.wire import Message, codec  # noqa: E402

# short timers so retransmission and timeout paths run in well under a second
FAST = dict(piggyback_timeout=0.3, ack_timeout=0.1, ack_random=1.0, max_retransmit=2)


def make_sim(data_dir, **kw):
    opts = dict(FAST, coap_port=0, http_port=0, log=False)
    opts.update(kw)
    return TbSim(str(data_dir), **opts).start()


@pytest.fixture
def sim(tmp_path):
    s = make_sim(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def device(sim):
    return sim.create_device("dev-1", token="TOKEN_ONE")


class Udp:
    # A device that speaks raw CoAP so a test can see every datagram.
    def __init__(self, sim):
        self.addr = ("127.0.0.1", sim.coap_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.mid = random.randrange(60000)

    def close(self):
        self.sock.close()

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def send(self, msg):
        self.sock.sendto(msg.encode(), self.addr)
        return msg

    def request(self, code, path, payload=b"", mtype=codec.CON, token=None, query=(), opts=()):
        # token None: one of its own (its message ID's), so response() never takes a late
        # reply to an earlier request for this one's
        options = [(codec.URI_PATH, p) for p in path.strip("/").split("/") if p]
        options += [(codec.URI_QUERY, q) for q in query] + list(opts)
        mid = self.next_mid()
        token = mid.to_bytes(2, "big") if token is None else token
        msg = Message(mtype, code, mid, token, options, payload)
        return self.send(msg)

    def recv(self, timeout=2.0):
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(4096)
        return Message.decode(data)

    def nothing(self, within):
        # True when no datagram arrives for `within` seconds
        try:
            self.recv(within)
        except socket.timeout:
            return True
        return False

    def drain(self, gap):
        # every datagram until none arrives for `gap` seconds
        got = []
        try:
            while True:
                got.append(self.recv(gap))
        except socket.timeout:
            return got

    def ack(self, msg):
        self.send(Message(codec.ACK, codec.EMPTY, msg.mid))

    def rst(self, msg):
        self.send(Message(codec.RST, codec.EMPTY, msg.mid))

    def distinct(self, count, timeout=2.0):
        # the next `count` messages that are not empty ACKs, retransmissions skipped, CON ones
        # ACKed
        seen, out = set(), []
        while len(out) < count:
            m = self.recv(timeout)
            if m.type == codec.CON:
                self.ack(m)
            if m.code != codec.EMPTY and (m.type, m.mid) not in seen:
                seen.add((m.type, m.mid))
                out.append(m)
        return out

    def response(self, req, timeout=2.0):
        # the reply to req: skips an empty ACK, ACKs a separate CON response
        while True:
            m = self.recv(timeout)
            if m.code == codec.EMPTY:
                continue
            if m.token == req.token:
                if m.type == codec.CON:
                    self.ack(m)
                return m


def subscribe(udp, feature, token, mtype=codec.CON):
    # an observation of the TOKEN_ONE device's feature ("rpc", "attributes") on token ->
    # (the request, its response)
    opts = [(codec.OBSERVE, 0)]
    req = udp.request(
        codec.GET, "/api/v1/TOKEN_ONE/" + feature, mtype=mtype, token=token, opts=opts
    )
    return req, udp.response(req)


@pytest.fixture
def udp(sim):
    u = Udp(sim)
    yield u
    u.close()


def http(sim, method, path, body=None, raw=None, headers=None):
    # -> (status, parsed JSON or bytes)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (sim.http_port, path), data=data, method=method
    )
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, content, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        status, content, ctype = e.code, e.read(), e.headers["Content-Type"]
    if ctype == "application/json" and content:
        return status, json.loads(content)
    return status, content


def until(cond, timeout=3.0):
    # wait for a condition on the server, checking every 20 ms
    gate = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if cond():
            return True
        gate.wait(0.02)
    return cond()


def coap_client(sim, *args, timeout=5):
    # libcoap's client; it exits 0 even on failure, so callers check its output
    cmd = ["coap-client-notls", "-B", "3"] + list(args)
    cmd[-1] = cmd[-1].replace("HOST", "127.0.0.1:%d" % sim.coap_port)
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def aiocoap_request(sim, code, path, payload=b"", query=(), mtype=None, observe=None):
    # one aiocoap request in a fresh context -> (code string, payload, options)
    import aiocoap

    async def run():
        ctx = await aiocoap.Context.create_client_context()
        try:
            uri = "coap://127.0.0.1:%d%s" % (sim.coap_port, path)
            if query:
                uri += "?" + "&".join(query)
            msg = aiocoap.Message(code=code, uri=uri, payload=payload)
            if mtype is not None:
                msg.mtype = mtype
            resp = await asyncio.wait_for(ctx.request(msg).response, 10)
            return str(resp.code.dotted), resp.payload, resp.opt
        finally:
            await ctx.shutdown()

    return asyncio.run(run())


# a clock the test moves by hand (TbSim(clock=...), ms): power saving and persistent RPC tests
NOW = 1_700_000_000_000


class Clock:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def clocked_sim(tmp_path, clock):
    s = make_sim(tmp_path / "data", clock=clock)
    yield s
    s.stop()
