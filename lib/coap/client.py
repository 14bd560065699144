# client.py: a reliable CoAP client over one UDP (or DTLS) socket for MicroPython asyncio.
# RFC 7252 messaging (CON retransmission, ACK/RST, dedup) and request/response matching,
# including ThingsBoard's separate CON responses that arrive without an ACK first.
#
# Zero allocation on the request path: an Exchange owns a request buffer that grows to the
# largest request it has sent and is reused; a response is read in place in the datagram the
# socket returned, which the exchange keeps until its next request (or release()), so nothing
# is copied.
# An Exchange is its own awaitable: `await ex.request(...)` returns ex with code set.

import asyncio
import random
from asyncio import core
from binascii import crc32
from errno import EAGAIN, ETIMEDOUT
from time import ticks_add, ticks_diff

from .codec import (
    ACK,
    CON,
    EMPTY,
    GET,
    MAX_SIZE,
    NON,
    OBSERVE,
    RST,
    MessageError,
    View,
    code_str,
    encode,
)

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_IDLE = const(0)
_WAIT_ACK = const(1)  # CON sent, nothing heard yet
_WAIT_RESP = const(2)  # ACKed (or NON): waiting for a separate response
_DONE = const(3)
_OBSERVING = const(4)
_FAILED = const(5)

_SEEN = const(16)  # incoming MIDs remembered for deduplication


class CoapTimeout(Exception):
    pass


class Reset(Exception):
    # the peer answered our CON with RST
    pass


class ResponseError(Exception):
    # an error response where a success was needed; code is the CoAP code (e.g. 132 = 4.04)
    def __init__(self, code, msg=""):
        super().__init__("%s %s" % (code_str(code), msg) if msg else code_str(code))
        self.code = code


class Exchange:
    # One request at a time with its response; reusable. After `await`, read code,
    # payload(), option(), uint(): they stay valid until the next request on this exchange
    # or release().

    def __init__(self, client):
        self.client = client
        self.buf = bytearray(0)  # the request: grown on demand (_encode), up to max_size
        self.view = View()
        self.token = bytearray(client.token_len)
        self.state = _IDLE
        self.code = 0
        self.mid = -1
        self.n = 0
        self.error = None
        self.stop = StopIteration(self)  # preallocated: awaiting returns self for free
        self.task = None
        self._sleeping = False
        self._deadline = 0
        self.end = 0  # give up waiting for a response at this tick
        self._timeout = 0
        self._limit = None  # the caller's timeout (ms)
        self._tries = 0
        self._ack_only = False
        # called with the exchange as its response arrives, in the reader's turn: what is
        # done with it there (and release()) is done before the next datagram is read
        self.on_response = None

    # --- starting a request

    def request(self, code, options=(), payload=b"", con=True, timeout=None, token=None):
        # Encode and send; returns self to await. timeout (ms) bounds the whole exchange;
        # token (0-8 bytes) replaces the random one.
        if self.state in (_WAIT_ACK, _WAIT_RESP, _OBSERVING):
            raise RuntimeError("exchange busy")
        if token is None:
            self._new_token()
        else:
            self.token = bytearray(token)
        self._send_new(code, options, payload, con, timeout)
        return self

    def _new_token(self):
        c = self.client
        token = self.token
        if len(token) != c.token_len:  # after a caller's own token
            token = self.token = bytearray(c.token_len)
        while True:
            for i in range(len(token)):
                token[i] = random.getrandbits(8)
            if not c._by_token(self):
                return

    def _send_new(self, code, options, payload, con, timeout):
        c = self.client
        c._mid = self.mid = (c._mid + 1) & 0xFFFF
        self.n = self._encode(CON if con else NON, code, options, payload)
        self.view.buf = b""  # let the last response's datagram go while we wait for the next
        self.code = 0
        self.error = None
        self._ack_only = False
        now = core.ticks()
        # the caller's timeout bounds everything; otherwise a CON runs its retransmission
        # schedule and then waits response_timeout for a separate response
        self._limit = timeout
        self.end = ticks_add(now, c.response_timeout if timeout is None else timeout)
        if con:
            self.state = _WAIT_ACK
            self._tries = 0
            # ACK_TIMEOUT x random [1, RANDOM_FACTOR], in integer ms (no float allocation)
            self._timeout = c.ack_timeout + (c._spread * random.getrandbits(10) >> 10)
            self._deadline = self._until(now, self._timeout)
        else:
            self.state = _WAIT_RESP
            self._deadline = self.end
        if c._reader is None:
            c.start()
        c.add(self)
        c._write(self.buf, self.n)

    def _encode(self, mtype, code, options, payload):
        # grow the buffer until the message fits (an error at max_size is the caller's)
        while True:
            try:
                return encode(self.buf, mtype, code, self.mid, self.token, options, payload)
            except MessageError:
                size = len(self.buf)
                if size >= self.client.max_size:
                    raise
                self.buf = bytearray(min(max(64, size * 2), self.client.max_size))

    def _until(self, now, ms):
        t = ticks_add(now, ms)
        return self.end if self._limit is not None and ticks_diff(t, self.end) > 0 else t

    # --- awaitable protocol (no coroutine object is created per request)

    def __iter__(self):
        return self

    def __next__(self):
        self._sleeping = False
        st = self.state
        if st == _DONE or st == _OBSERVING:
            self.task = None
            self.stop.__traceback__ = None
            raise self.stop
        if st == _FAILED:
            self.task = None
            raise self.error
        if st == _IDLE:
            raise RuntimeError("no request made")
        now = core.ticks()
        if ticks_diff(now, self._deadline) >= 0:
            self._expire(now)
            return self.__next__()
        self.task = core.cur_task
        self._sleeping = True
        core._task_queue.push(core.cur_task, self._deadline)
        return None

    def send(self, _):
        return self.__next__()

    def throw(self, exc, *_):
        # the awaiting task was cancelled: forget the exchange
        self._sleeping = False
        self.task = None
        self.abandon()
        raise exc

    def _expire(self, now):
        c = self.client
        timed_out = self._limit is not None and ticks_diff(now, self.end) >= 0
        if self.state == _WAIT_ACK and not timed_out:
            if self._tries < c.max_retransmit:
                self._tries += 1
                self._timeout <<= 1
                self._deadline = self._until(now, self._timeout)
                c.stats["retransmit"] += 1
                c._write(self.buf, self.n)
                return
            self._fail(CoapTimeout("no ACK after %d transmissions" % (self._tries + 1)))
        else:
            ms = self.client.response_timeout if self._limit is None else self._limit
            self._fail(CoapTimeout("no response within %d ms" % ms))

    # --- events from the client's reader

    def _acked(self):
        # empty ACK: the response will come separately
        if self._ack_only:
            self.state = _DONE
            self.client.remove(self)
            self.wake()
            return
        self.state = _WAIT_RESP
        if self._limit is None:
            self.end = ticks_add(core.ticks(), self.client.response_timeout)
        self._deadline = self.end

    def _deliver(self, view):
        # the response: keep its view (and so its datagram), give the client ours
        c = self.client
        self.view, c._view = view, self.view
        self.code = view.code
        self.state = _DONE
        c.remove(self)
        self.wake()
        if self.on_response:
            self.on_response(self)

    def _fail(self, error):
        self.error = error
        self.state = _FAILED
        self.client.remove(self)
        self.wake()

    def wake(self):
        if self._sleeping:
            self._sleeping = False
            core._task_queue.remove(self.task)
            core._task_queue.push(self.task)

    def abandon(self):
        if self.state in (_WAIT_ACK, _WAIT_RESP, _OBSERVING):
            self.state = _IDLE
            self.client.remove(self)

    # --- the response

    def release(self):
        # let the response's datagram go now, not at the next request; payload() is empty
        v = self.view
        v.buf = b""
        v.n = v.pay = 0

    def payload(self):
        v = self.view
        return memoryview(v.buf)[v.pay : v.n]

    def option(self, num, default=None):
        return self.view.option(num, default)

    def uint(self, num, default=None):
        return self.view.uint(num, default)

    def __repr__(self):
        return "<Exchange %s mid=%d>" % (code_str(self.code), self.mid)


class Observation(Exchange):
    # RFC 7641 client side. callback(obs) runs for every response of the relation in order
    # (the first one included); payload() is valid during the call. When the relation ends
    # (2.02, an error code, a response without Observe, RST, or timeout of the registration)
    # callback runs once more with obs.active False; re-register with renew().

    def __init__(self, client, options, callback, con=True):
        super().__init__(client)
        self.options = [(OBSERVE, 0)] + [o for o in options if o[0] != OBSERVE]
        self.callback = callback
        self.con = con
        self.active = False
        self.seq = -1  # last Observe number accepted
        self.last = 0  # tick of the last accepted response
        self._renewing = False

    def register(self, timeout=None, token=None):
        # GET with Observe=0 and a new (or the given) token; await it for the first response.
        self.client.remove(self)
        Exchange.request(self, GET, self.options, b"", self.con, timeout, token)
        self.seq = -1
        self._renewing = False
        return self

    def renew(self, timeout=None):
        # Re-register with the same token (RFC 7641 §3.3.1): the server replaces the relation.
        # A live relation counts as renewed once the server ACKs (ThingsBoard may not answer a
        # same-token re-registration); an ended one waits for its first response again.
        self.client.remove(self)
        self.seq = -1
        self._send_new(GET, self.options, b"", self.con, timeout)
        self._renewing = self.active
        return self

    def _acked(self):
        if self._renewing:
            self._renewing = False
            self.state = _OBSERVING
            self.last = core.ticks()
            self.wake()
        else:
            Exchange._acked(self)

    def cancel(self, con=True):
        # Deregister with Observe=1 on the same token. Done once the request is ACKed or
        # answered (ThingsBoard only ACKs it). con=False: a NON nobody waits for (a board going
        # to sleep; if it is lost the server ends the relation at its next unanswered notification)
        self.client.remove(self)
        self.active = False
        self._renewing = False
        self.options[0] = (OBSERVE, 1)
        self._send_new(GET, self.options, b"", con, None)
        self.options[0] = (OBSERVE, 0)
        self._ack_only = True
        return self

    def _fresh(self, seq, now):
        # RFC 7641 §3.4
        last = self.seq
        if last < 0:
            return True
        if (last < seq and seq - last < 0x800000) or (last > seq and last - seq > 0x800000):
            return True
        return ticks_diff(now, self.last) > 128000

    def _deliver(self, view):
        if self._ack_only:  # a late response to the cancel request
            return Exchange._deliver(self, view)
        c = self.client
        seq = view.uint(OBSERVE)
        ok = view.code >> 5 == 2 and view.code != 66 and seq is not None
        now = core.ticks()
        if ok and not self._fresh(seq, now):
            return  # stale: drop (already ACKed by the client)
        self.view, c._view = view, self.view
        self.code = view.code
        first = self.state != _OBSERVING
        self._renewing = False
        if ok:
            self.seq = seq
            self.last = now
            self.state = _OBSERVING
            self.active = True
        else:
            self.state = _DONE
            self.active = False
            c.remove(self)
        if first:
            self.wake()
        self._notify()

    def _fail(self, error):
        Exchange._fail(self, error)
        if self.active:
            self.active = False
            self._notify()

    def _notify(self):
        try:
            self.callback(self)
        except Exception as e:  # a bad handler must not stop the reader
            self.client._log("observe callback failed:", repr(e))


class Client:
    # One peer, one socket for the life of the client (ThingsBoard keys observe relations by
    # IP:port). sock: a connected, non-blocking UDP socket (or a DTLS-wrapped one) with
    # write(buf, n) and recv(n). An ESP32 socket that received a 0-byte datagram is closed for
    # good (recv returns b"" from then on): reopen() makes a new one, and on_reopen (if set)
    # hears of it, since the server sees a new port.

    def __init__(
        self,
        sock,
        max_size=MAX_SIZE,
        ack_timeout=2000,
        random_factor=1.5,
        max_retransmit=4,
        response_timeout=30000,
        token_len=4,
        log=None,
        reopen=None,
        mid=None,
    ):
        self.sock = sock
        self.reopen = reopen
        self.on_reopen = None
        self.max_size = max_size
        self.ack_timeout = ack_timeout
        self._spread = int(ack_timeout * (random_factor - 1))
        self.max_retransmit = max_retransmit
        self.response_timeout = response_timeout
        self.token_len = token_len
        self.log = log
        self._view = View()  # the datagram being handled
        self._ctl = bytearray(4)  # empty ACK / RST
        # message IDs go on from mid (a board back from deep sleep on the same port: the server
        # would take a recent ID again for a retransmission)
        self._mid = random.getrandbits(16) if mid is None else mid & 0xFFFF
        self._active = []
        self._seen = [-1] * _SEEN  # (mid << 2 | reply type) of recent CON/NON from the peer
        self._seen_crc = [0] * _SEEN  # and the low 30 bits of the CRC-32 of each
        self._seen_i = 0
        self._reader = None
        self.stats = {"tx": 0, "rx": 0, "retransmit": 0, "dup": 0, "bad": 0}

    # --- public API

    def exchange(self):
        return Exchange(self)

    @property
    def mid(self):
        # the last message ID used: Client(mid=) goes on after it
        return self._mid

    def request(self, code, options=(), payload=b"", con=True, timeout=None):
        # One-off request with a fresh exchange; for repeated requests keep an exchange().
        self.start()
        return Exchange(self).request(code, options, payload, con, timeout)

    def observe(self, options, callback, con=True, timeout=None, token=None):
        self.start()
        return Observation(self, options, callback, con).register(timeout, token)

    def start(self):
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_loop())

    def close(self):
        if self._reader:
            self._reader.cancel()
            self._reader = None
        for ex in self._active[:]:
            ex._fail(OSError("client closed"))
        self.sock.close()

    # --- internals

    def _log(self, *args):
        if self.log:
            self.log(*args)

    def add(self, ex):
        if ex not in self._active:
            self._active.append(ex)

    def remove(self, ex):
        if ex in self._active:
            self._active.remove(ex)

    def _by_token(self, ex):
        for a in self._active:
            if a is not ex and a.token == ex.token:
                return a
        return None

    def _write(self, buf, n):
        try:
            self.sock.write(buf, n)
            self.stats["tx"] += 1
        except OSError as e:  # link down: retransmission (or the caller's timeout) copes
            self._log("send failed:", e)

    def _control(self, mtype, mid):
        c = self._ctl
        c[0] = 0x40 | mtype << 4
        c[1] = EMPTY
        c[2] = mid >> 8
        c[3] = mid & 0xFF
        self._write(c, 4)

    async def _read_loop(self):
        rx_once = self._rx_once
        while True:
            # one datagram per wake-up: poll reports the next one at once, and reading on
            # to EAGAIN would cost an exception object every time
            sock = self.sock
            if not getattr(sock, "pending", 0):  # coap.dtls: records already read
                yield core._io_queue.queue_read(sock)
            if rx_once(sock) is None:  # out of memory: let the other tasks free some first
                await asyncio.sleep_ms(50)

    def _rx_once(self, sock):
        # recv, not readinto: a stream read keeps reading and would merge queued datagrams
        try:
            data = sock.recv(self.max_size)
        except OSError as e:
            if e.errno in (EAGAIN, ETIMEDOUT):  # unix port and ESP32 say it differently
                return False
            self._log("receive failed:", e)  # e.g. ECONNREFUSED from an ICMP error
            return False
        except MemoryError as e:  # recv allocates first: the datagram waits, the reader lives
            self._log("receive failed:", repr(e))
            return None
        if data is None:  # nothing waiting
            return False
        if not data:  # a 0-byte datagram: on an ESP32 this socket is closed now
            self._reopen()
            return False
        self.stats["rx"] += 1
        try:
            self._received(data)
        except Exception as e:  # never let one datagram stop the reader
            self._log("datagram handling failed:", repr(e))
        self._view.buf = b""  # an exchange took the datagram, or nobody needs it any more
        return True

    def _reopen(self):
        if self.reopen is None:
            return
        self._log("empty datagram: the socket is closed, a new one takes over")
        self.sock.close()  # first: the new one may bind the same local port
        self.sock = self.reopen()
        if self.on_reopen:
            self.on_reopen()

    def _received(self, data):
        # data: the datagram as recv returned it, parsed where it is
        v = self._view
        n = len(data)
        try:
            v.parse(data, n)
        except MessageError as e:
            self.stats["bad"] += 1
            self._log("dropped bad datagram:", e)
            if n >= 4 and data[0] >> 4 == 0x4:  # CON, version 1: reject (RFC 7252 §4.2)
                self._control(RST, data[2] << 8 | data[3])
            return
        mtype = v.type
        mid = v.mid
        if mtype >= ACK:
            for ex in self._active:
                if ex.mid == mid and ex.state == _WAIT_ACK:
                    if mtype == RST:
                        ex._fail(Reset("reset by peer"))
                    elif v.code == EMPTY:
                        ex._acked()
                    elif v.token_is(ex.token):
                        ex._deliver(v)
                    return
            return
        # CON or NON from the peer. A duplicate is the same datagram again: same MID and same
        # bytes (ThingsBoard picks notification MIDs at random, so a MID alone can repeat)
        seen = self._seen
        crc = crc32(data) & 0x3FFFFFFF  # a small int: 32 bits would be an object on the heap
        for i in range(_SEEN):
            e = seen[i]
            if e >> 2 == mid and self._seen_crc[i] == crc:
                self.stats["dup"] += 1
                if e & 3:
                    self._control(e & 3, mid)  # the same answer again
                return
        ex = None
        if v.code >= 32:  # a response; requests and CoAP pings get RST: we serve nothing
            for a in self._active:
                if v.token_is(a.token):
                    ex = a
                    break
        reply = (ACK if ex else RST) if mtype == CON else (0 if ex else RST)
        seen[self._seen_i] = mid << 2 | reply
        self._seen_crc[self._seen_i] = crc
        self._seen_i = (self._seen_i + 1) % _SEEN
        if reply:
            self._control(reply, mid)
        if ex:
            ex._deliver(v)


def address(host, port):
    # getaddrinfo's first entry with an address to connect to. The ESP32's fills one in for
    # IPv4 only (None for IPv6): a host without one raises ValueError (no retry helps)
    import socket

    for ai in socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM):
        if ai[-1] is not None:
            return ai
    raise ValueError("%s has no IPv4 address (an ESP32 reaches IPv4 only)" % host)


def udp_socket(host, port, local_port=None):
    # a fresh non-blocking UDP socket connected to host:port, from local_port if given (a board
    # back from deep sleep keeps its port: the server keys observe relations by it)
    import socket

    ai = address(host, port)
    s = socket.socket(ai[0], socket.SOCK_DGRAM)
    if local_port:
        s.bind(socket.getaddrinfo("0.0.0.0", local_port)[0][-1])
    s.connect(ai[-1])
    s.setblocking(False)
    return s


def connect(host, port=5683, local_port=None, **kw):
    # A Client on a fresh UDP socket connected to host:port. For coaps: coap.dtls.connect.
    def sock():
        return udp_socket(host, port, local_port)

    return Client(sock(), reopen=sock, **kw)
