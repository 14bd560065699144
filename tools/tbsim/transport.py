# transport.py: CoAP message layer over UDP, shaped like Californium as ThingsBoard configures
# it (transport reference §2.2, §13): deferred empty ACKs, explicit or "auto" reply types,
# retransmitted CON messages, and a deduplicator that answers duplicates from a cache.
import asyncio
import random
import time

from .events import short
from .wire import Message, codec, message


class Params:
    def __init__(
        self,
        ack_timeout=2.0,
        ack_random=1.5,
        max_retransmit=4,
        exchange_lifetime=247.0,
        piggyback_timeout=0.5,
        piggyback=False,
    ):
        self.ack_timeout = ack_timeout
        self.ack_random = ack_random
        self.max_retransmit = max_retransmit
        self.exchange_lifetime = exchange_lifetime
        self.piggyback_timeout = piggyback_timeout
        self.piggyback = piggyback  # reply in the ACK when possible, like most CoAP servers


class Reliable:
    # Retransmission state of one CON message. An observe relation keeps one for all its
    # notifications, so the retry budget and the doubled timeout carry over (§13).
    def __init__(self, retries_left, on_ack=None, on_rst=None, on_timeout=None):
        self.timeout = None
        self.retries_left = retries_left
        self.on_ack = on_ack
        self.on_rst = on_rst
        self.on_timeout = on_timeout


class _Out:
    def __init__(self, peer, mid, data, state):
        self.peer = peer
        self.mid = mid
        self.data = data
        self.state = state
        self.handle = None
        self.done = False


class Exchange:
    # One request from a device and what has been sent back for it.
    def __init__(self, transport, peer, msg):
        self.t = transport
        self.peer = peer
        self.msg = msg
        self.con = msg.type == codec.CON
        self.acked = False  # an ACK (empty or piggy-backed) went out, or a separate CON did
        self.response = None  # bytes of the response, for duplicates
        self.response_in_ack = False
        self.separate = None  # _Out of a separate CON response
        self.ack_timer = None
        self.created = time.monotonic()
        self.label = ""  # device and path for the console line, set by the resource layer
        self.path = []
        self.queries = []

    def accept(self):
        # Empty ACK, sent when the piggyback timer runs out or at once on /fw and /sw.
        if self.con and not self.acked:
            self.acked = True
            self.t.send(self.peer, Message(codec.ACK, codec.EMPTY, self.msg.mid).encode())
        if self.ack_timer:
            self.ack_timer.cancel()
            self.ack_timer = None

    def respond(self, code, payload=b"", options=(), explicit=True, on_acked=None):
        # explicit: the type is forced to the request's (TB's setConfirmable), so a CON request
        # gets a separate CON even when ready in time. Otherwise piggy-back while unacked.
        if self.response is not None:
            return
        if self.ack_timer:
            self.ack_timer.cancel()
            self.ack_timer = None
        if isinstance(payload, str):
            payload = payload.encode()
        piggy = self.con and not self.acked and (not explicit or self.t.params.piggyback)
        if piggy:
            mtype, mid = codec.ACK, self.msg.mid
        else:
            mtype = codec.CON if self.con else codec.NON
            mid = self.t.next_mid(self.peer)
        msg = Message(mtype, code, mid, self.msg.token, list(options), payload)
        data = msg.encode()
        self.response = data
        self.response_in_ack = piggy
        self.acked = self.acked or self.con
        style = "ACK" if piggy else message.TYPES[mtype]
        self.t.log(self, code, style, payload)
        if mtype == codec.CON:
            state = Reliable(self.t.params.max_retransmit, on_ack=on_acked)
            self.separate = self.t.send_con(self.peer, mid, data, state)
        else:
            self.t.send(self.peer, data)

    def adopt(self, data, out, code):
        # The reply went out through an observe relation (the paced 2.03): cache it here too.
        if self.ack_timer:
            self.ack_timer.cancel()
            self.ack_timer = None
        self.response = data
        self.acked = self.acked or self.con
        self.separate = out
        self.t.log(self, code, message.TYPES[codec.CON if self.con else codec.NON], b"")

    def duplicate(self):
        # A retransmitted request: never processed twice (Californium's deduplicator).
        if not self.con:
            if self.response is not None:
                self.t.send(self.peer, self.response)
        elif self.response_in_ack:
            self.t.send(self.peer, self.response)
        elif self.acked:
            self.t.send(self.peer, Message(codec.ACK, codec.EMPTY, self.msg.mid).encode())
            if self.separate is not None and not self.separate.done:
                self.t.send(self.peer, self.separate.data)
        # else: not acknowledged and no reply yet, so the duplicate is ignored (§13)


class Transport(asyncio.DatagramProtocol):
    def __init__(self, params, faults, handler, log):
        self.params = params
        self.faults = faults
        self.handler = handler  # async handler(exchange)
        self.log_line = log
        self.sock = None
        self.loop = None
        self.exchanges = {}  # (peer, mid) -> Exchange
        self.outgoing = {}  # (peer, mid) -> _Out of an unacknowledged CON
        self.non_sent = {}  # (peer, mid) -> (Reliable, time): NON notifications, for RSTs
        self.mids = {}  # peer -> next MID of separate responses
        self.rng = random.Random()
        self.tasks = set()
        self.sweeper = None

    # socket plumbing

    def connection_made(self, transport):
        self.sock = transport
        self.loop = asyncio.get_running_loop()
        self.sweeper = self.loop.call_later(5, self.sweep)

    def close(self):
        if self.sweeper:
            self.sweeper.cancel()
        for out in list(self.outgoing.values()):
            if out.handle:
                out.handle.cancel()
        self.outgoing.clear()
        for task in list(self.tasks):
            task.cancel()
        if self.sock:
            self.sock.close()
            self.sock = None

    def datagram_received(self, data, peer):
        self.faults.dirs["in"].pass_datagram(self.loop, lambda d: self.receive(d, peer), data)

    def send(self, peer, data):
        out = self.faults.dirs["out"]
        out.pass_datagram(self.loop, lambda d: self.sock and self.sock.sendto(d, peer), data)

    # Californium keeps outbound exchanges by (peer, MID) and never has two with one MID in
    # flight; the two ways of picking one below skip a MID that still waits for its ACK, or the
    # ACK for one would complete the other, which then never ends (and a notification held
    # back by it never goes out)

    def next_mid(self, peer):
        # per-peer counter from a random start, as Californium does for responses (§13)
        mid = self.mids.get(peer)
        if mid is None:
            mid = self.rng.randrange(65536)
        while (peer, mid) in self.outgoing:
            mid = (mid + 1) & 0xFFFF
        self.mids[peer] = (mid + 1) & 0xFFFF
        return mid

    def random_mid(self, peer):
        # notifications' MIDs (§3.3)
        while True:
            mid = self.rng.randrange(65000)
            if (peer, mid) not in self.outgoing:
                return mid

    def log(self, ex, code, style, payload):
        method = codec.code_str(ex.msg.code)
        names = {codec.GET: "GET", codec.POST: "POST", codec.PUT: "PUT", codec.DELETE: "DELETE"}
        self.log_line(
            "%s:%d" % ex.peer[:2],
            message.TYPES[ex.msg.type],
            names.get(ex.msg.code, method),
            ex.label or "/" + "/".join(ex.path),
            "->",
            codec.code_str(code),
            style,
            # a provisioning reply carries the new device's credentials: never in the log
            "<credentials not shown>"
            if ex.path[-1:] == ["provision"] and payload
            else short(payload),
        )

    # reliability

    def send_con(self, peer, mid, data, state):
        out = _Out(peer, mid, data, state)
        self.outgoing[(peer, mid)] = out
        if state.timeout is None:
            p = self.params
            state.timeout = p.ack_timeout * self.rng.uniform(1, p.ack_random)
        out.handle = self.loop.call_later(state.timeout, self._retransmit, out)
        self.send(peer, data)
        return out

    def track_non(self, peer, mid, state):
        self.non_sent[(peer, mid)] = (state, time.monotonic())

    def _retransmit(self, out):
        if out.done:
            return
        state = out.state
        if state.retries_left <= 0:
            self._finish(out)
            if state.on_timeout:
                state.on_timeout()
            return
        state.retries_left -= 1
        state.timeout *= 2
        out.handle = self.loop.call_later(state.timeout, self._retransmit, out)
        self.send(out.peer, out.data)

    def forget(self, out):
        # stop retransmitting out, without a callback
        self._finish(out)

    def _finish(self, out):
        out.done = True
        if out.handle:
            out.handle.cancel()
        self.outgoing.pop((out.peer, out.mid), None)

    def forget_all(self):
        # forget every unacknowledged CON without calling back (a "restarted" server)
        for out in list(self.outgoing.values()):
            self._finish(out)

    # receiving

    def receive(self, data, peer):
        try:
            msg = Message.decode(data)
        except codec.MessageError:
            # RFC 7252 §4.2: reject a malformed CON with RST when its header can be read
            if len(data) >= 4 and data[0] >> 6 == 1 and (data[0] >> 4) & 3 == codec.CON:
                mid = data[2] << 8 | data[3]
                self.send(peer, Message(codec.RST, codec.EMPTY, mid).encode())
            return
        if msg.type in (codec.ACK, codec.RST):
            self._ack_or_rst(msg, peer)
        elif msg.code == codec.EMPTY or msg.code >= 64:
            if msg.type == codec.CON:  # a ping, or a response we never asked for
                self.send(peer, Message(codec.RST, codec.EMPTY, msg.mid).encode())
        else:
            self._request(msg, peer)

    def _ack_or_rst(self, msg, peer):
        key = (peer, msg.mid)
        out = self.outgoing.get(key)
        if out is not None:
            self._finish(out)
            cb = out.state.on_ack if msg.type == codec.ACK else out.state.on_rst
            if cb:
                cb()
            return
        sent = self.non_sent.pop(key, None)
        if sent and msg.type == codec.RST and sent[0].on_rst:
            sent[0].on_rst()

    def _request(self, msg, peer):
        key = (peer, msg.mid)
        ex = self.exchanges.get(key)
        if ex is not None:
            ex.duplicate()
            return
        ex = Exchange(self, peer, msg)
        self.exchanges[key] = ex
        if ex.con:
            ex.ack_timer = self.loop.call_later(self.params.piggyback_timeout, ex.accept)
        task = self.loop.create_task(self._handle(ex))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, ex):
        try:
            await self.handler(ex)
        except Exception as e:  # a bug or a bad request we did not foresee: 5.00, keep serving
            self.log_line("error handling request:", repr(e))
            ex.respond(codec.INTERNAL_SERVER_ERROR, explicit=False)

    def sweep(self):
        now = time.monotonic()
        life = self.params.exchange_lifetime
        for key in [k for k, ex in self.exchanges.items() if now - ex.created > life]:
            del self.exchanges[key]
        for key in [k for k, (_, t) in self.non_sent.items() if now - t > life]:
            del self.non_sent[key]
        self.sweeper = self.loop.call_later(5, self.sweep)
