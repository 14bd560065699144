# dtls.py: CoAP over DTLS 1.2 (coaps) with MicroPython's ssl (mbedTLS), for coap.client.
# Imported only when coaps is used, so plain CoAP pays nothing for it. The SSLContext comes
# from coap/dtlscontext.py, needed only while a session's settings are read.
#
# DtlsSocket is what the Client sees: write(buf, n), recv(n), close() and polling, as on a UDP
# socket. Underneath, one UDP socket lives as long as it does (ThingsBoard keys DTLS sessions
# and observations by IP:port) and carries one DTLS session at a time:
# - the handshake runs without blocking, started by the first write; datagrams written while it
#   runs are kept (a few) and sent once it completes. mbedTLS retransmits its handshake flights
#   only when it is called, which happens on every write (the CoAP retransmissions) and on
#   every datagram received;
# - a session the server ended (close_notify or a fatal alert, as libcoap sends when it no longer
#   knows us) or that stays silent for dead_ms after a CON (a restarted Californium drops records
#   it cannot read) is dropped and a full handshake starts on the next write;
# - a failed handshake is logged with its reason and retried after a backoff (2 s doubling to
#   60 s); writes in between are dropped, CoAP retransmission copes.
# The handshake's own code is coap/handshake.py, in RAM only while no session is up.

import io
import select
from errno import EAGAIN, ETIMEDOUT
from time import ticks_diff, ticks_ms

from micropython import const

_GET_FILENO = const(10)  # MP_STREAM_* ioctl requests
_POLL = const(3)
_CLOSE = const(4)
PIN_MISMATCH = -0x3000  # MBEDTLS_ERR_X509_FATAL_ERROR: how a pinned check ends the handshake


def pinned_check(pinned):
    # an SSLContext's verify_callback(cert, depth) that ends the handshake unless the server's
    # own certificate (depth 0) is pinned (DER); made here, as it lives as long as the session.
    # Its arguments' names are in a board's ROM: names of their own would be interned in RAM
    return lambda cert, n: 0 if n or bytes(cert) == pinned else PIN_MISMATCH


class _Link(io.IOBase):
    # The UDP socket as mbedTLS's transport. mbedTLS offers its whole input buffer (16 KB, not
    # the GC heap's) and reads go straight into it: no datagram is allocated, so a read cannot
    # run out of memory. A stream read takes every datagram waiting, but each one holds whole
    # records with their lengths, which DTLS allows in one datagram (RFC 6347 4.1.1): mbedTLS
    # hands them out one per read, and `left` counts those it holds, as no socket will say so.
    # Closing a DTLS session closes its transport: this one stays open for the next session.
    def __init__(self, sock):
        self.sock = sock
        self.left = 0  # records read that mbedTLS has not handed out yet (at most: some may
        # not be application data, or be dropped)
        self.closed = False  # a 0-byte datagram: on an ESP32 the socket reads nothing more

    def readinto(self, buf):
        # Nothing may raise here: an exception would unwind through mbedTLS and leave its
        # session state broken
        try:
            n = self.sock.readinto(buf)
        except OSError as e:
            return None if e.errno in (EAGAIN, ETIMEDOUT) else -e.errno
        if not n:  # None: nothing waiting; 0: a 0-byte datagram, the socket is closed now
            self.closed = n == 0
            return None
        at = left = 0
        while at + 13 <= n:  # record headers: 13 bytes, the length in the last two
            at += 13 + (buf[at + 11] << 8 | buf[at + 12])
            left += 1
        self.left = left - 1  # mbedTLS reads only when it holds nothing: less the one it hands out
        return n

    def write(self, buf):
        try:
            return self.sock.write(buf)
        except OSError as e:
            return None if e.errno == EAGAIN else -e.errno

    def ioctl(self, req, arg):
        return 0


class DtlsSocket(io.IOBase):
    def __init__(self, sock, ctx, hostname, log=None, dead_ms=20000):
        # sock: a connected, non-blocking UDP socket; hostname: what the server's certificate
        # must name (CN or subjectAltName, a DNS name or an IP address)
        self.sock = sock
        self.ctx = ctx
        self.hostname = hostname
        self.log = log
        self.dead_ms = dead_ms
        self.up = False  # a session is established
        self.error = None  # why the last handshake failed
        self.stats = {"handshakes": 0, "failed": 0, "dropped": 0}
        self._link = _Link(sock)
        self._ss = None
        self._queue = []
        self._quiet = None  # tick of the first CON written since the server was last heard
        self._retry = None  # no new handshake before this tick
        self._backoff = 0
        self.poll = None  # the socket's, made when asyncio first asks (ports but unix)
        self._handshake = None  # coap/handshake.py while a handshake runs

    def _log(self, *args):
        if self.log:
            self.log(*args)

    # --- what the Client uses

    def write(self, buf, n=None):
        now = ticks_ms()
        if self.up and self._quiet is not None and ticks_diff(now, self._quiet) >= self.dead_ms:
            self._log("DTLS: no answer for %d s, new handshake" % (self.dead_ms // 1000))
            self._drop()
        if self._ss is None and not self._hs().start(self, now):
            self.stats["dropped"] += 1  # waiting to retry the handshake
            return None
        if n is None:
            n = len(buf)
        try:
            r = self._ss.write(buf, n)
        except Exception as e:  # handshake failure (ValueError for certificates) or I/O
            self._fail(e)
            return None
        if r is None:  # still handshaking
            self._hs().keep(self, buf, n)
        else:
            if not self.up:
                self._hs().established(self, bytes(buf[:n]))
            if self._quiet is None and not buf[0] & 0x30:  # a CON: expects an answer
                self._quiet = now
        return r

    def recv(self, n):
        ss = self._ss
        if ss is None:  # no session: drain, or the socket stays readable
            try:
                if self.sock.recv(n) == b"":
                    return b""  # closed: the Client opens a new one
            except OSError:
                pass
            return None
        link = self._link
        held = link.left
        if held:  # this read takes one of those (one read from the socket sets it anew)
            link.left = held - 1
        try:
            data = ss.recv(n)
        except MemoryError:  # ssl allocates n before it reads: the record is still held
            link.left = held
            raise
        except OSError as e:
            if e.errno not in (EAGAIN, ETIMEDOUT):
                self._fail(e)
                return None
            data = None
        except ValueError as e:  # a certificate check failed
            self._fail(e)
            return None
        if link.closed:  # as a closed UDP socket says it: the Client opens a new one
            return b""
        if data is None:  # nothing for us (maybe the handshake moved on)
            if not self.up:
                self._hs().flush(self)
            return None
        if not data:  # close_notify or a fatal alert: the server ended the session
            self._fail(None)
            return None
        self._quiet = None
        return data

    @property
    def pending(self):
        # records mbedTLS holds: the Client reads on without waiting for the socket
        return self._link.left

    def close(self):
        self._drop()
        self.sock.close()

    def ioctl(self, req, arg):
        if req == _GET_FILENO:  # unix port: poll the UDP socket's descriptor directly
            f = getattr(self.sock, "fileno", None)
            return f() if f else -1
        if req == _POLL:  # other ports ask the object itself
            if self.poll is None:
                self.poll = select.poll()
                self.poll.register(self.sock, select.POLLIN | select.POLLOUT)
            got = self.poll.poll(0)
            return got[0][1] & arg if got else 0
        if req == _CLOSE:
            self.close()
        return 0

    # --- sessions

    def _hs(self):
        # coap/handshake.py, loaded while a handshake needs it (it lets itself go after)
        if self._handshake is None:
            from . import handshake

            self._handshake = handshake
        return self._handshake

    def _fail(self, e):
        if self.up or e is None:
            if e is None:
                self._log("DTLS session ended by the server")
            else:
                self._log("DTLS session lost:", self._hs().reason(e))
            self._drop()  # a new handshake on the next write, at once
            return
        self._hs().failed(self, e)

    def _drop(self):
        if self._ss is not None:
            try:
                self._ss.close()  # frees mbedTLS's state; _Link keeps the socket open
            except Exception:
                pass
        self._ss = None
        self.up = False
        self._link.left = 0
        self._quiet = None
        self._queue = []


def connect(host, port=5684, ctx=None, hostname=None, dtls_log=None, **kw):
    # A coap Client over DTLS to host:port with ctx (from context()); the handshake starts
    # with the first request. hostname: the name the server's certificate must carry (default:
    # host); dtls_log receives the session's events; other keywords go to Client.
    from .client import Client, udp_socket

    def socket():
        return DtlsSocket(udp_socket(host, port), ctx, hostname or host, dtls_log)

    return Client(socket(), reopen=socket, **kw)
