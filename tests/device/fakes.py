# fakes.py: deterministic stand-ins for device tests: a virtual clock that asyncio and the
# client both follow, a fake UDP socket whose peer is a test script, and scratch folders.
# Virtual time only moves when every task is waiting, so timing asserts are exact up to the
# few real milliseconds a test takes (asyncio's own pushes use the real clock).

import errno
import os
import sys
import time
from asyncio import core
from binascii import hexlify

POLLIN = 1


class Clock:
    def __init__(self):
        self.offset = 0
        self.base = time.ticks_ms()

    def ticks(self):
        return time.ticks_add(time.ticks_ms(), self.offset)

    def now(self):
        # ms since the clock was installed
        return time.ticks_diff(self.ticks(), self.base)

    def advance(self, ms):
        self.offset += ms


class FakeSocket:
    # A connected UDP socket. sent: [(ms, bytes)]; the peer script reacts in on_send(data) and
    # answers with deliver(data, delay_ms).

    def __init__(self, clock, on_send=None):
        self.clock = clock
        self.on_send = on_send
        self.sent = []
        self._inbox = []  # [(due ms, bytes)] in delivery order
        self.closed = False

    def write(self, buf, n=None):
        data = bytes(buf[:n] if n is not None else buf)
        self.sent.append((self.clock.now(), data))
        if self.on_send:
            self.on_send(data)
        return len(data)

    def deliver(self, data, delay=0):
        due = self.clock.now() + delay
        i = len(self._inbox)
        while i and self._inbox[i - 1][0] > due:
            i -= 1
        self._inbox.insert(i, (due, bytes(data)))

    def next_due(self):
        return self._inbox[0][0] if self._inbox else None

    def readable(self):
        return bool(self._inbox) and self._inbox[0][0] <= self.clock.now()

    def recv(self, n):
        if not self.readable():
            raise OSError(errno.EAGAIN)
        return self._inbox.pop(0)[1][:n]

    def close(self):
        self.closed = True


class Poller:
    # Replaces asyncio's select.poll: ready fake sockets, otherwise virtual time jumps ahead.

    def __init__(self, clock):
        self.clock = clock
        self.objs = []

    def register(self, obj, ev=POLLIN):
        if obj not in self.objs:
            self.objs.append(obj)

    def modify(self, obj, ev):
        pass

    def unregister(self, obj):
        self.objs.remove(obj)

    def _ready(self):
        return [(o, POLLIN) for o in self.objs if o.readable()]

    def ipoll(self, dt=-1, flags=0):
        ready = self._ready()
        if ready:
            return ready
        now = self.clock.now()
        dues = [o.next_due() for o in self.objs if o.next_due() is not None]
        step = min(dues) - now if dues else None
        if dt >= 0 and (step is None or dt < step):
            step = dt
        if step is None:
            raise RuntimeError("deadlock: every task waits and nothing is due")
        self.clock.advance(max(0, step))
        return self._ready()


def install():
    # Virtual time for this event loop (the runner restores the real clock after each case).
    clock = Clock()
    core.ticks = clock.ticks
    core._io_queue.poller = Poller(clock)
    return clock


class RAMDisk:
    # block device for VfsLfs2; with snaps set, keeps a copy of the disk after every write or
    # erase: each copy is what a power cut at that moment would leave
    def __init__(self, data=None):
        self.data = data if data is not None else bytearray(512 * 64)
        self.snaps = None

    def readblocks(self, n, buf, off=0):
        a = n * 512 + off
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, n, buf, off=0):
        a = n * 512 + off
        self.data[a : a + len(buf)] = buf
        self._snap()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self.data) // 512
        if op == 5:  # block size
            return 512
        if op == 6:  # erase
            self.data[arg * 512 : (arg + 1) * 512] = b"\xff" * 512
            self._snap()
        return 0

    def _snap(self):
        if self.snaps is not None:
            self.snaps.append(bytes(self.data))


# --- What MicroPython's ESP32 port gives the firmware where the unix port is kinder. Each
# stand-in follows the source of MicroPython v1.28.0 (or the release named) at the place cited.


def ssl_before_dtls():
    # ssl of MicroPython 1.24 and older: no PROTOCOL_DTLS_CLIENT, which came with DTLS in 1.25
    # (extmod/modtls_mbedtls.c, commit 321b30ca56), so reading it raises AttributeError
    import ssl

    class Ssl:
        pass

    old = Ssl()
    for name in dir(ssl):
        if not name.startswith("PROTOCOL_DTLS"):
            setattr(old, name, getattr(ssl, name))
    return old


class Esp32Socket:
    # The ESP32's socket module (ports/esp32/modsocket.c) for a table of host names:
    # Esp32Socket({"name": ["192.0.2.1", "2001:db8::1"]}). getaddrinfo lists every address lwIP
    # resolved but fills in only an IPv4 one, as ("a.b.c.d", port); any other is None
    # (esp32_socket_getaddrinfo). connect() reads its address with _socket_getaddrinfo, so None
    # raises TypeError. An unknown name raises OSError(-2) (_getaddrinfo_inner).
    AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM = 2, 10, 1, 2

    def __init__(self, hosts, clock=None, peer=None):
        self.hosts = hosts
        self.clock = clock
        self.peer = peer  # peer(sock, data): the test script, for every socket made
        self.made = []

    def getaddrinfo(self, host, port, af=0, type=0, proto=0, flags=0):
        if host not in self.hosts:
            raise OSError(-2)
        out = []
        for a in self.hosts[host]:
            v4 = ":" not in a
            fam = self.AF_INET if v4 else self.AF_INET6
            out.append((fam, type or self.SOCK_STREAM, 0, "", (a, port) if v4 else None))
        return out

    def socket(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        s = Esp32UdpSocket(af, self.clock)
        if self.peer:
            s.on_send = lambda data: self.peer(s, data)
        self.made.append(s)
        return s


SPIN = 100  # reads of a closed socket that count as a read loop spinning


class Esp32UdpSocket(FakeSocket):
    # A UDP socket of the ESP32 port (ports/esp32/modsocket.c), the peer a test script as for
    # FakeSocket. recv(n) allocates its n bytes on the GC heap before it reads, even when it
    # then raises EAGAIN (_socket_recvfrom: vstr_init_len): with `free` set, an n above it
    # raises MemoryError and the datagram stays queued. readinto(buf) allocates nothing and,
    # as a stream read (py/stream.c mp_stream_rw over socket_stream_read), reads datagram after
    # datagram into buf until none is waiting or buf is full (a datagram longer than what is
    # left is cut there). A datagram of 0 bytes marks the socket closed
    # (SOCKET_STATE_PEER_CLOSED): every later read returns nothing without reading, while poll,
    # which asks lwIP, still reports what is queued as readable.
    def __init__(self, af=2, clock=None):
        super().__init__(clock or Clock())
        self.af = af
        self.peer = None
        self.blocking = True
        self.free = None  # bytes the GC heap can still give at once (None: plenty)
        self.asked = []  # every n recv was called with
        self.peer_closed = False
        self.closed_reads = 0

    def connect(self, addr):
        host, port = addr  # TypeError for None, as mp_obj_get_array_fixed_n raises
        self.peer = (host, port)

    def setblocking(self, flag):
        self.blocking = flag

    def recv(self, n):
        self.asked.append(n)
        if self.free is not None and n > self.free:
            raise MemoryError("memory allocation failed, allocating %d bytes" % n)
        if self.peer_closed:
            self.closed_reads += 1
            if self.closed_reads > SPIN:  # a test must end: the reader would spin for ever
                raise RuntimeError("recv on a closed socket %d times: spinning" % SPIN)
            return b""
        data = super().recv(n)
        if not data:
            self.peer_closed = True
        return data

    def readinto(self, buf):
        done = 0
        while done < len(buf):
            if self.peer_closed:
                self.closed_reads += done == 0
                return done
            if not self.readable():
                return done or None  # EAGAIN: what was read, or None as for a non-blocking read
            data = self._inbox.pop(0)[1][: len(buf) - done]
            if not data:  # the end of the stream: mp_stream_rw returns what it has
                self.peer_closed = True
                return done
            buf[done : done + len(data)] = data
            done += len(data)
        return done


class DtlsContext:
    # ssl.SSLContext(PROTOCOL_DTLS_CLIENT) as extmod/modtls_mbedtls.c makes it, far enough for
    # coap/dtls.py: wrap_socket(link, ...) -> DtlsSession; the handshake completes at once.
    def wrap_socket(self, link, server_hostname=None, do_handshake_on_connect=True):
        return DtlsSession(link)


class DtlsSession:
    # A session's reads: mbedTLS offers the transport its whole input buffer (16384 B in
    # ESP-IDF's config; library/ssl_msg.c) through _mbedtls_ssl_recv, which calls the Python
    # readinto (py/modio.c iobase_read_write): None is WANT_READ, 0 is the end of the
    # connection (MBEDTLS_ERR_SSL_CONN_EOF), and an exception unwinds through mbedTLS without
    # its state being put right, so this session is unusable afterwards. mbedTLS reads only when
    # it holds no record, and hands out one record per read (record() makes one; no encryption
    # here).
    def __init__(self, link):
        self.link = link
        self.inbuf = bytearray(16384)  # mbedTLS's, outside the GC heap on an ESP32
        self.held = []  # records read, not handed out yet
        self.broken = False

    def write(self, buf, n=None):
        return len(buf) if n is None else n

    def recv(self, n):
        if self.broken:
            raise OSError(-0x6C00)  # MBEDTLS_ERR_SSL_INTERNAL_ERROR
        free = getattr(self.link.sock, "free", None)
        if free is not None and n > free:  # stream read1 allocates n first (vstr_init_len)
            raise MemoryError("memory allocation failed, allocating %d bytes" % n)
        if not self.held:
            try:
                r = self.link.readinto(self.inbuf)
            except BaseException:
                self.broken = True
                raise
            if r is None:
                return None
            if r < 0:
                raise OSError(-r)
            if r == 0:
                raise OSError(-0x7280)  # MBEDTLS_ERR_SSL_CONN_EOF
            at = 0
            while at + 13 <= r:
                end = at + 13 + (self.inbuf[at + 11] << 8 | self.inbuf[at + 12])
                self.held.append(bytes(self.inbuf[at + 13 : end]))
                at = end
        return self.held.pop(0)[:n]

    def cipher(self):
        return ("TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8", "DTLSv1.2", 128)

    def close(self):
        pass


def record(payload):
    # a DTLS 1.2 application data record (epoch 1, sequence 0) holding payload as it is
    n = len(payload)
    return bytes([23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 0, n >> 8, n & 0xFF]) + payload


class Ntptime:
    # micropython-lib's ntptime (micropython/net/ntptime/ntptime.py): settime() raises OSError
    # when the server does not answer within its 1 s timeout, and ValueError when the answer is
    # shorter than 48 bytes (struct.unpack of msg[40:44]). replies: what each call meets, in
    # turn: "timeout", "short" or "ok"; set: the clock was set.
    def __init__(self, *replies):
        self.replies = list(replies)
        self.set = False

    def settime(self):
        r = self.replies.pop(0) if self.replies else "ok"
        if r == "timeout":
            raise OSError(110)  # ETIMEDOUT
        if r == "short":
            raise ValueError("buffer too small")
        self.set = True


class Esp32Module:
    # esp32 of a chip (ports/esp32/modesp32.c): on the classic ESP32 only raw_temperature(),
    # an uncalibrated register value (CONFIG_IDF_TARGET_ESP32); on the S2, S3, C3 and C6 only
    # mcu_temperature(), in °C from ESP-IDF's calibrated temperature_sensor driver.
    def __init__(self, chip="esp32", value=113):
        if chip == "esp32":
            self.raw_temperature = lambda: value
        else:
            self.mcu_temperature = lambda: value


def scratch_dir(tag):
    # a folder for one test module's cases, removed when the module's process ends; empty()
    # clears it for the next case
    path = "/tmp/coapboard-%s-%s" % (tag, hexlify(os.urandom(4)).decode())
    sys.atexit(lambda: rmtree(path))
    return path


def empty(path):
    rmtree(path)
    os.mkdir(path)
    return path


def rmtree(d):
    try:
        entries = list(os.ilistdir(d))
    except OSError:
        return
    for name, kind, *_ in entries:
        path = d + "/" + name
        rmtree(path) if kind == 0x4000 else os.remove(path)
    os.rmdir(d)
