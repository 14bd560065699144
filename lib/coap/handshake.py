# handshake.py: what a DtlsSocket (coap/dtls.py) runs only while no DTLS session is up: starting
# a handshake, keeping the datagrams written meanwhile, the session's start, a failed
# handshake's reason and backoff, and an explicit handshake for tools. A DtlsSocket loads it
# when it needs a session and lets it go once one is up: on a board, code lives in RAM.
import asyncio
import random
import sys
from asyncio import core
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from .dtls import PIN_MISMATCH

_QUEUE = const(4)  # datagrams kept while a handshake runs
_BACKOFF_MAX = const(60000)


class DtlsError(OSError):
    pass


def reason(e):
    # why a handshake or session failed, in words (mbedTLS errors carry no secrets)
    if isinstance(e, ValueError):  # certificate checks: mbedTLS's own explanation
        return " ".join(str(e).split()) or "certificate refused"
    code = e.args[0] if e.args else 0
    if code == PIN_MISMATCH:
        return "the server's certificate is not the pinned one"
    if code == -0x7780:
        return "the server refused the handshake (fatal alert: certificate, PSK or cipher)"
    if code == -0x6800:
        return "no answer from the server (handshake timeout)"
    return " ".join(str(a) for a in e.args) or repr(e)


def start(s, now):
    # a new session's handshake, unless the backoff after a failed one still runs
    if s._retry is not None and ticks_diff(s._retry, now) > 0:
        return False
    s._retry = None
    try:
        s._ss = s.ctx.wrap_socket(
            s._link, server_hostname=s.hostname, do_handshake_on_connect=False
        )
    except Exception as e:
        failed(s, e)
        return False
    s.stats["handshakes"] += 1
    return True


def keep(s, buf, n):
    data = bytes(buf[:n])
    q = s._queue
    if len(q) < _QUEUE and data not in q:
        q.append(data)


def flush(s):
    # after handshake progress: send what was written meanwhile, once the session is up
    q = s._queue
    while q and s._ss is not None:
        try:
            if s._ss.write(q[0]) is None:
                return
        except Exception as e:
            s._fail(e)
            return
        sent = q.pop(0)
        if not s.up:
            established(s, sent)


def established(s, sent):
    s.up = True
    s.error = None
    s._backoff = 0
    s._quiet = None
    if sent in s._queue:  # it just went out
        s._queue.remove(sent)
    s._log("DTLS session up:", s._ss.cipher()[0])
    flush(s)
    if s.up:  # this code goes until the next handshake (a caller may still run it)
        s._handshake = None
        sys.modules.pop(__name__, None)
        package, _, name = __name__.rpartition(".")
        p = sys.modules.get(package)
        if p is not None and name in p.__dict__:  # the package's reference goes too
            delattr(p, name)


def failed(s, e):
    # the handshake failed: say why, and wait before the next one (2 s doubling to 60 s)
    s.error = reason(e)
    s.stats["failed"] += 1
    s._backoff = min(s._backoff * 2, _BACKOFF_MAX) if s._backoff else 2000
    s._retry = ticks_add(ticks_ms(), s._backoff)
    s._log("DTLS handshake failed:", s.error)
    s._drop()


async def handshake(s, timeout=10000):
    # Establish a session on the DtlsSocket s now and check that the server answers a CoAP
    # ping through it (with RST), before a Client reads s. Raises DtlsError with the reason.
    ping = bytearray(b"\x40\x00\x00\x00")
    ping[2] = random.getrandbits(8)
    ping[3] = random.getrandbits(8)
    end = ticks_add(ticks_ms(), timeout)
    s._retry = None  # asked for now: no backoff
    s.error = None
    while ticks_diff(end, ticks_ms()) > 0:
        # starts the handshake or moves it on (the ping is kept until the session is up);
        # once up, a ping again every round: a lost ping or answer is not the end
        s.write(ping)
        if s.error:
            raise DtlsError(s.error)
        try:
            await asyncio.wait_for_ms(_readable(s), 200)  # 200 ms: mbedTLS's timers
        except asyncio.TimeoutError:
            continue
        data = s.recv(64)
        if s.error:
            raise DtlsError(s.error)
        if data and len(data) >= 4 and data[0] >> 4 == 7 and data[2:4] == ping[2:4]:
            return
    raise DtlsError(s.error or "no DTLS session within %d ms" % timeout)


def _readable(s):
    yield core._io_queue.queue_read(s)
