# codec.py: the CoAP message format of RFC 7252 (header, token, options, payload).
# Runs unchanged under MicroPython and CPython, so it can be cross-checked against aiocoap.
# Decoding works in place (View); coap/message.py's Message is the convenient copy for tools
# and tests, a module of its own so the device does not load it.

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# The numbers the device itself uses (lib/ and firmware/ as they run on a board). The rest of
# RFC 7252's registries is in coap/codes.py, which codec hands out as its own (codec.PUT,
# from coap.codec import PUT): a device that never asks for one never loads them.

# Message types
CON = const(0)
NON = const(1)
ACK = const(2)
RST = const(3)

# Codes are class << 5 | detail
EMPTY = const(0)
GET = const(1)
POST = const(2)
CREATED = const(65)  # 2.01
CONTENT = const(69)  # 2.05
NOT_FOUND = const(132)  # 4.04

# Option numbers
OBSERVE = const(6)
URI_PATH = const(11)
URI_QUERY = const(15)

_MAX_TOKEN = const(8)
MAX_SIZE = const(1152)  # RFC 7252 §4.6: fits an IPv6 minimum MTU with 1024-byte payloads


def __getattr__(name):  # the rest of the registries (codes.py)
    from . import codes

    return getattr(codes, name)


class MessageError(ValueError):
    # The one error for anything malformed or too large; the message says what.
    pass


def code_str(code):
    return "%d.%02d" % (code >> 5, code & 31)


def uint_len(v):
    n = 0
    while v:
        n += 1
        v >>= 8
    return n


def _ext_len(v):
    # bytes of extension for an option delta or length (RFC 7252 §3.1)
    if v < 13:
        return 0
    if v < 269:
        return 1
    if v < 65805:
        return 2
    raise MessageError("option delta or length too large")


def _put_ext(buf, i, v, x):
    if x == 1:
        buf[i] = v - 13
    elif x == 2:
        v -= 269
        buf[i] = v >> 8
        buf[i + 1] = v & 0xFF
    return i + x


def _nibble(v, x):
    return v if x == 0 else 12 + x


def _sorted(options):
    last = -1
    for num, _ in options:
        if num < last:
            return False
        last = num
    return True


def _by_number(options):
    # stable order by option number without allocating a sorted copy per option
    nums = [num for num, _ in options]
    nums.sort()
    done = -1
    for num in nums:
        if num != done:
            done = num
            for o in options:
                if o[0] == num:
                    yield o


def encode(buf, mtype, code, mid, token=b"", options=(), payload=b""):
    # Write a message into buf (a bytearray) and return its length.
    # options: (number, value) pairs; value is bytes, str or int (minimal uint, 0 is empty).
    # Raises MessageError if a field is out of range or it does not fit: nothing is truncated.
    tkl = len(token)
    if tkl > _MAX_TOKEN:
        raise MessageError("token longer than 8 bytes")
    if not (0 <= mtype <= 3 and 0 <= code <= 255 and 0 <= mid <= 0xFFFF):
        raise MessageError("type, code or message ID out of range")
    if code == EMPTY and (tkl or options or payload):
        raise MessageError("an empty message has no token, options or payload")
    size = len(buf)
    end = 4 + tkl
    if end > size:
        raise MessageError("message too large")
    buf[0] = 0x40 | mtype << 4 | tkl
    buf[1] = code
    buf[2] = mid >> 8 & 0xFF
    buf[3] = mid & 0xFF
    buf[4:end] = token
    prev = 0
    for num, val in options if _sorted(options) else _by_number(options):
        if isinstance(val, int):
            if val < 0:
                raise MessageError("negative uint option value")
            vlen = uint_len(val)
        else:
            if isinstance(val, str):
                val = val.encode()
            vlen = len(val)
        delta = num - prev
        if num < 0:
            raise MessageError("negative option number")
        prev = num
        dx = _ext_len(delta)
        lx = _ext_len(vlen)
        i = end
        end += 1 + dx + lx + vlen
        if end > size:
            raise MessageError("message too large")
        buf[i] = _nibble(delta, dx) << 4 | _nibble(vlen, lx)
        i = _put_ext(buf, _put_ext(buf, i + 1, delta, dx), vlen, lx)
        if isinstance(val, int):
            while vlen:
                vlen -= 1
                buf[i + vlen] = val & 0xFF
                val >>= 8
        else:
            buf[i:end] = val
    plen = len(payload)
    if plen:
        i = end
        end += 1 + plen
        if end > size:
            raise MessageError("message too large")
        buf[i] = 0xFF
        buf[i + 1 : end] = payload
    return end


class View:
    # A received datagram decoded in place: fields index into buf and nothing is copied,
    # so one View and one buffer serve every datagram. Valid until buf is overwritten.

    def __init__(self):
        self.buf = b""
        self.n = 0
        self.type = 0
        self.code = 0
        self.mid = 0
        self.tkl = 0
        self.pay = 0  # payload start (== n when there is none)
        # option walk state
        self.num = 0
        self.at = 0  # value start
        self.len = 0  # value length
        self._next = 0

    def parse(self, buf, n):
        # Validate the whole message; raise MessageError if malformed.
        if n < 4:
            raise MessageError("shorter than the header")
        b0 = buf[0]
        if b0 >> 6 != 1:
            raise MessageError("unknown version")
        tkl = b0 & 15
        if tkl > _MAX_TOKEN:
            raise MessageError("token length 9-15")
        self.buf = buf
        self.n = n
        self.type = b0 >> 4 & 3
        self.code = buf[1]
        self.mid = buf[2] << 8 | buf[3]
        self.tkl = tkl
        if self.code == EMPTY and n != 4:
            raise MessageError("empty message with token or data")
        if 4 + tkl > n:
            raise MessageError("token past the end")
        self.pay = n
        self.first()
        while self.next():
            pass
        return self

    def first(self):
        self.num = 0
        self._next = 4 + self.tkl

    def next(self):
        # Step to the next option: set num, at, len; False at the end of the options.
        buf = self.buf
        i = self._next
        n = self.n
        if i >= n:
            return False
        b = buf[i]
        if b == 0xFF:
            if i + 1 >= n:
                raise MessageError("payload marker without payload")
            self.pay = i + 1
            self._next = n
            return False
        i += 1
        delta = b >> 4
        length = b & 15
        if delta == 13:
            if i >= n:
                raise MessageError("truncated option")
            delta = buf[i] + 13
            i += 1
        elif delta == 14:
            if i + 1 >= n:
                raise MessageError("truncated option")
            delta = (buf[i] << 8 | buf[i + 1]) + 269
            i += 2
        elif delta == 15:
            raise MessageError("reserved option delta 15")
        if length == 13:
            if i >= n:
                raise MessageError("truncated option")
            length = buf[i] + 13
            i += 1
        elif length == 14:
            if i + 1 >= n:
                raise MessageError("truncated option")
            length = (buf[i] << 8 | buf[i + 1]) + 269
            i += 2
        elif length == 15:
            raise MessageError("reserved option length 15")
        if i + length > n:
            raise MessageError("option value past the end")
        self.num += delta
        self.at = i
        self.len = length
        self._next = i + length
        return True

    def find(self, num):
        # Position the walk on the first option num; False if absent.
        self.first()
        while self.next():
            if self.num == num:
                return True
            if self.num > num:
                return False
        return False

    def uint(self, num, default=None):
        # Value of a uint option, or default; allocates nothing.
        if not self.find(num):
            return default
        return self.value_uint()

    def value_uint(self):
        v = 0
        buf = self.buf
        for i in range(self.at, self.at + self.len):
            v = v << 8 | buf[i]
        return v

    def value(self):
        return bytes(self.buf[self.at : self.at + self.len])

    def option(self, num, default=None):
        return self.value() if self.find(num) else default

    def options(self):
        # [(number, bytes)] in wire order (copies)
        out = []
        self.first()
        while self.next():
            out.append((self.num, self.value()))
        return out

    def token(self):
        return bytes(self.buf[4 : 4 + self.tkl])

    def token_is(self, token):
        # compare the token with a bytes-like without allocating
        tkl = self.tkl
        if len(token) != tkl:
            return False
        buf = self.buf
        for i in range(tkl):
            if buf[4 + i] != token[i]:
                return False
        return True

    def payload(self):
        return bytes(self.buf[self.pay : self.n])
