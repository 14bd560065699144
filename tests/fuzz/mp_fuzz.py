# mp_fuzz.py (MicroPython): the device's parsers of server input, fed by hypothesis from
# CPython (tests/fuzz/device_fuzz.py) in batches over stdin. One persistent process holds the
# real stack: coap Client on a fake socket and virtual clock (tests/device/fakes.py), the
# thingsboard Device with both observations live, and the firmware's App handlers (RPC with
# the GPIO allowlist, telemetry_interval) on a board whose pins record every write.
#
# stdin: one JSON line per batch {"t": target, "in": [input, ...]}; stdout: "@@" + JSON
# {"out": [result, ...]}, one result per input. Other lines (the firmware's log) are noise.
# Targets and their inputs (bytes as hex):
#   notify     [kind, payload]   a CON 2.05 notification on the "rpc" or "attributes" relation
#   datagram   hex               any datagram; a token of 00525043 / 00415454 becomes the
#                                current rpc / attributes token, so junk reaches the relations
#   provision  [code, payload]   the reply to the firmware's first provisioning request
#   block2     [[code, block2, etag, payload], ...]  the replies to a Block2 download
#   reply      [fn, code, payload]  the reply to request_attributes or send_rpc_call
# Every result carries "e": what the safety nets caught (callback/handler exceptions that
# escaped a parser, task exceptions): a parser that raises anything there fails the test.
import asyncio
import json
import sys
from binascii import hexlify, unhexlify

import fakes

from coap import block
from coap.client import Client
from coap.codec import ACK, BLOCK2, CON, CONTENT, CREATED, ETAG, OBSERVE, URI_PATH
from coap.message import Message
from firmware import app as fwapp
from firmware import log as fwlog
from firmware import start as fwstart
from firmware.board import Base

GPIO = [
    {"name": "pump", "pin": 26, "direction": "out", "initial": 0},
    {"name": "fan", "pin": 27, "direction": "out", "invert": True, "initial": 0},
    {"name": "door", "pin": 35, "direction": "in"},
]
RPC_TOKEN = b"\x00RPC"
ATTR_TOKEN = b"\x00ATT"
GOOD_PROVISION = b'{"credentialsType":"ACCESS_TOKEN","credentialsValue":"GOOD","status":"SUCCESS"}'

errors = []  # what a safety net caught during the current input
writes = []  # (pin, level) the board was asked to drive
resets = []


class Pin:
    def __init__(self, num, out):
        self.num = num
        self.out = out
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        if not self.out:
            errors.append("input pin %d driven" % self.num)
        writes.append((self.num, v))
        self.level = 1 if v else 0


class Board(Base):
    name = "fuzz"

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.made = {}

    def pin(self, num, direction, invert=False, initial=None, pull_up=False):
        p = self.made[num] = Pin(num, direction == "out")
        return p

    def reset(self):
        resets.append(1)

    def restart(self):  # provisioning's, once the token is kept: the process goes on here
        pass

    def _reset_cause(self):
        return "power_on"


class NoUpdates:
    # the OTA flow is not fuzzed here: it only needs to be told of the device
    def __init__(self):
        self.acked = asyncio.Event()
        self.device = None


class Peer:
    # the server side of the fake socket: answers observe registrations and POSTs, and the
    # next scripted replies
    def __init__(self):
        self.sock = None
        self.script = []  # (code, options, payload) for the next requests to `want`
        self.want = None  # (code, last path segment) of the requests the script answers
        self.posts = []  # (last path segment, payload) of POSTs answered 2.01
        self.tokens = {}  # "rpc" / "attributes" -> registration token
        self.mid = 0
        self.seq = 2

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def on_send(self, data):
        m = Message.decode(data)
        if m.type != CON:
            return  # our ACK / RST of a notification
        path = [bytes(v) for n, v in m.options if n == URI_PATH]
        last = path[-1].decode() if path else ""
        obs = m.uint(OBSERVE)
        if obs is not None:
            opts = []
            payload = b""
            if obs == 0:
                self.tokens[last] = bytes(m.token)
                self.seq += 1
                opts = [(OBSERVE, self.seq)]
                payload = b"{}" if last == "attributes" else b""
            reply = Message(ACK, CONTENT, m.mid, m.token, opts, payload)
        elif self.script and (m.code, last) == self.want:
            code, opts, payload = self.script.pop(0)
            if code == 0:  # a malformed "empty" reply with content: raw bytes
                head = bytes([0x60 | len(m.token), 0, m.mid >> 8, m.mid & 255])
                self.sock.deliver(head + bytes(m.token) + b"\xff" + payload)
                return
            reply = Message(ACK, code, m.mid, m.token, opts, payload)
        elif m.code == 2:  # POST
            self.posts.append((last, bytes(m.payload)))
            reply = Message(ACK, CREATED, m.mid, m.token, [], b"")
        else:
            return  # nothing scripted: no answer (a timeout)
        self.sock.deliver(reply.encode())

    def notification(self, kind, payload):
        self.seq += 1
        token = self.tokens.get(kind, b"")
        opts = [(OBSERVE, self.seq)]
        return Message(CON, CONTENT, self.next_mid(), token, opts, payload).encode()


def caught(*args):
    text = " ".join(str(a) for a in args)
    # what a parser should never let through to these nets; drops and refusals are fine
    for bad in ("callback failed", "handling failed", "failed:"):
        if bad in text and "reply failed" not in text:
            errors.append(text)
            return


def task_error(loop, ctx):
    errors.append("task: %r" % ctx.get("exception"))


async def settle(ms=50):
    # let every task run to rest; virtual time jumps ahead when nothing is due
    await asyncio.sleep_ms(ms)


async def live():
    for _ in range(200):
        if all(o.active for o in dev._subs):
            return
        await asyncio.sleep_ms(500)
    errors.append("observations not re-established")


async def t_notify(inp):
    kind, payload = inp
    await live()
    posts = len(peer.posts)
    sock.deliver(peer.notification(kind, unhexlify(payload)))
    await settle()
    replies = [[k, p.decode()] for k, p in peer.posts[posts:]]
    return {"r": replies, "iv": app.telemetry.interval}


async def t_datagram(inp):
    await live()
    data = bytearray(unhexlify(inp))
    if len(data) >= 4:
        tkl = data[0] & 15
        tok = bytes(data[4 : 4 + tkl])
        for magic, kind in ((RPC_TOKEN, "rpc"), (ATTR_TOKEN, "attributes")):
            if tok == magic and len(peer.tokens.get(kind, b"")) == 4:
                data[4:8] = peer.tokens[kind]
    sent = len(sock.sent)
    try:
        client._received(bytes(data))
    except Exception as e:
        errors.append("_received raised %r" % e)
    ctl = [hexlify(d).decode() for _, d in sock.sent[sent:]]
    await settle()
    return {"c": ctl}


async def t_provision(inp):
    code, payload = inp
    peer.script = [(code, [], unhexlify(payload)), (CREATED, [], GOOD_PROVISION)]
    peer.want = (2, "provision")
    cfg = dict(base_cfg, token="")
    try:
        got = await asyncio.wait_for_ms(fwstart.provision(board, client, cfg), 60000)
        r = {"token": got["token"]}
    except Exception as e:
        r = {"x": type(e).__name__, "m": str(e)}
    peer.script = []
    return r


async def t_block2(inp):
    peer.script = [(code, _opts(b2, etag), unhexlify(payload)) for code, b2, etag, payload in inp]
    peer.want = (1, "fw")
    got = []
    try:
        # a block's payload is valid during the call only: keep a copy
        n = await block.download(
            client, [(URI_PATH, "fw")], lambda b: got.append(bytes(b)), timeout=5000
        )
        r = {"n": n}
    except Exception as e:
        r = {"x": type(e).__name__, "m": str(e)}
    r["w"] = hexlify(b"".join(got)).decode()
    peer.script = []
    return r


def _opts(b2, etag):
    opts = []
    if etag is not None:
        opts.append((ETAG, unhexlify(etag)))
    if b2 is not None:
        opts.append((BLOCK2, b2))
    return opts


async def t_reply(inp):
    fn, code, payload = inp
    peer.script = [(code, [], unhexlify(payload))]
    peer.want = (1, "attributes") if fn == "attributes" else (2, "rpc")
    try:
        # types only: the values may hold floats JSON cannot carry back (inf)
        if fn == "attributes":
            got = await dev.request_attributes(shared_keys=["a"], timeout=5000)
            r = {"v": {k: type(v).__name__ for k, v in got.items()}}
        else:
            got = await dev.send_rpc_call("m", timeout=5000)
            r = {"v": type(got).__name__}
    except Exception as e:
        r = {"x": type(e).__name__, "m": str(e)}
    peer.script = []
    return r


TARGETS = {
    "notify": t_notify,
    "datagram": t_datagram,
    "provision": t_provision,
    "block2": t_block2,
    "reply": t_reply,
}


async def one(fn, inp):
    errors.clear()
    del writes[:]
    del sock.sent[:]  # what the fakes record would grow with every input
    del peer.posts[:]
    try:
        r = await fn(inp)
    except Exception as e:
        r = {}
        errors.append("harness: %r" % e)
    r["e"] = list(errors)
    r["p"] = list(writes)
    return r


async def batch(target, inputs):
    fn = TARGETS[target]
    out = []
    for inp in inputs:
        out.append(await one(fn, inp))
    return out


# --- amplification for the long run: each input is mutated `amp` times here, on the device
# side, and checked against the invariants that need no model of the input

_rnd = [0x2545F491]


def _rand(n):
    # xorshift32: cheap, and the same sequence on every run
    x = _rnd[0]
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    _rnd[0] = x
    return x % n if n else 0


_BYTES = b'{}[]",:0123456789-.eE\\ \x00\xff\x0d\x0e\x0f\xd0\xe0\xf0'


def mutate(data):
    data = bytearray(data)
    for _ in range(1 + _rand(3)):
        kind = _rand(5)
        n = len(data)
        if kind == 0 and n:
            data[_rand(n)] = _BYTES[_rand(len(_BYTES))]
        elif kind == 1 and n:
            data[_rand(n)] ^= 1 + _rand(255)
        elif kind == 2:
            data = data[: _rand(n + 1)]
        elif kind == 3:
            i = _rand(n + 1)
            data = data[:i] + bytes(_rand(256) for _ in range(1 + _rand(4))) + data[i:]
        elif n:
            i = _rand(n)
            data = data[:i] + data[i : i + 1 + _rand(8)] + data[i:]
    return bytes(data)


def violations(target, kind, data, r):
    bad = list(r["e"])
    if any(w[0] not in (26, 27) for w in r["p"]):
        bad.append("pin outside the allowlist written: %r" % r["p"])
    if target == "datagram":
        ctl = r["c"]
        if len(ctl) > 1:
            bad.append("answered twice")
        for c in ctl:
            c = unhexlify(c)
            if len(c) != 4 or c[0] not in (0x60, 0x70) or c[1] or c[2:] != data[2:4]:
                bad.append("bad control message %s" % hexlify(c))
        if len(data) >= 4 and data[0] >> 4 == 4 and not ctl:
            bad.append("CON not answered")
    elif kind == "rpc":
        replies = [p for k, p in r["r"] if k != "attributes"]
        if len(replies) > 1:
            bad.append("several replies")
        for p in replies:
            try:
                ok = type(json.loads(p)) is dict
            except ValueError:
                ok = False
            if not ok:
                bad.append("reply not a JSON object: %s" % p)
    else:
        if not 1000 <= r["iv"] <= 86400000:
            bad.append("interval %r" % r["iv"])
        if r["p"]:
            bad.append("attributes moved pins")
    return bad


async def storm(target, inputs, amp):
    fn = TARGETS[target]
    n = 0
    bad = []
    for inp in inputs:
        kind = inp[0] if target == "notify" else None
        data = unhexlify(inp[1] if kind else inp)
        for _ in range(amp):
            m = mutate(data)
            arg = [kind, hexlify(m).decode()] if kind else hexlify(m).decode()
            r = await one(fn, arg)
            n += 1
            v = violations(target, kind, m, r)
            if v and len(bad) < 5:
                bad.append({"in": arg, "why": v, "r": r})
    return {"n": n, "bad": bad}


async def boot(root):
    global client, dev, app, board, base_cfg
    board = Board(root)
    client = Client(sock, log=caught)
    with open(root + "/config.json", "w") as f:
        f.write('{"server": {"host": "127.0.0.1"}, "provisioning": {"key": "k", "secret": "s"}}')
    base_cfg, problems = fwstart.with_config(lambda c: c.load(root + "/config.json"))
    cfg = dict(base_cfg, token="T0KEN", gpio=GPIO)
    app = fwapp.App(board, client, cfg, [NoUpdates()])
    dev = app.device
    dev.log = caught
    # each notification here comes after the reply to the one before was confirmed, and is a
    # new RPC even when it repeats one (repeats are tests/device/mp_rpc.py's)
    dev.rpc_late_ms = 0
    dev.subscribe_to_attribute("telemetry_interval", app._interval_changed)
    dev.set_server_side_rpc_request_handler(app.rpc)
    dev.start()
    await live()


def main():
    global sock, peer
    fwlog.set_level("error")
    clock = fakes.install()
    peer = Peer()
    sock = peer.sock = fakes.FakeSocket(clock, peer.on_send)
    asyncio.get_event_loop().set_exception_handler(task_error)
    asyncio.run(boot(sys.argv[1]))
    print("@@" + json.dumps({"ready": True}))
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd = json.loads(line)
        # tasks live on between runs: the loop's queue is global
        if cmd.get("amp"):
            print("@@" + json.dumps(asyncio.run(storm(cmd["t"], cmd["in"], cmd["amp"]))))
        else:
            print("@@" + json.dumps({"out": asyncio.run(batch(cmd["t"], cmd["in"]))}))


main()
