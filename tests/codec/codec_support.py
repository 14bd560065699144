# Shared helpers for the codec tests: our codec and aiocoap, both reduced to plain tuples
# (type, code, mid, token, [(number, raw value bytes)], payload) so they compare directly.
import os

from aiocoap import Message as AioMessage
from aiocoap import optiontypes
from aiocoap.error import UnparsableMessage
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import Type

from coap import codec

# RFC 7252 §3.1: 13 -> 1 extra byte (value - 13), 14 -> 2 extra bytes (value - 269)
MAX_EXT = 65804
UINT_FORMATS = (
    optiontypes.UintOption,
    optiontypes.BlockOption,
    optiontypes.ContentFormatOption,
)


def fuzz_examples(default):
    # COAP_FUZZ_EXAMPLES overrides every property test's example count (long-run target)
    env = os.environ.get("COAP_FUZZ_EXAMPLES")
    return int(env) if env else default


def rfc_ext(v):
    # (nibble, extension bytes) for an option delta or length, written from RFC 7252 §3.1
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, (v - 269).to_bytes(2, "big")


def rfc_option(delta, value):
    dn, dx = rfc_ext(delta)
    ln, lx = rfc_ext(len(value))
    return bytes([dn << 4 | ln]) + dx + lx + value


def rfc_message(mtype, code, mid, token=b"", options=(), payload=b""):
    # Independent reference encoder (options must already be sorted, values raw bytes)
    out = bytes([0x40 | mtype << 4 | len(token), code]) + mid.to_bytes(2, "big") + token
    prev = 0
    for num, val in options:
        out += rfc_option(num - prev, val)
        prev = num
    if payload:
        out += b"\xff" + payload
    return out


def uint_bytes(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big")


def raw(value):
    # our option value (bytes/str/int) as it must appear on the wire
    if isinstance(value, int):
        return uint_bytes(value)
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def expected_options(options):
    # what decoding must give back: stable sort by number, raw bytes values
    return sorted(((n, raw(v)) for n, v in options), key=lambda o: o[0])


def ours_encode(mtype, code, mid, token=b"", options=(), payload=b"", size=70000):
    buf = bytearray(size)
    n = codec.encode(buf, mtype, code, mid, token, options, payload)
    assert len(buf) == size
    return bytes(buf[:n])


def ours_decode(data):
    v = codec.View().parse(data, len(data))
    return (v.type, v.code, v.mid, v.token(), v.options(), v.payload())


def option_format(num):
    return OptionNumber(num).format


def is_uint_format(num):
    return issubclass(option_format(num), UINT_FORMATS)


def is_string_format(num):
    return issubclass(option_format(num), optiontypes.StringOption)


def aio_decode(data):
    m = AioMessage.decode(bytes(data))
    opts = [(int(o.number), o.encode()) for o in m.opt.option_list()]
    return (int(m.mtype), int(m.code), m.mid, bytes(m.token), opts, bytes(m.payload))


def aio_encode(mtype, code, mid, token=b"", options=(), payload=b""):
    # options as raw bytes, fed through each option's own decode() (its typed value)
    m = AioMessage(code=Code(code), payload=bytes(payload))
    m.mtype = Type(mtype)
    m.mid = mid
    m.token = bytes(token)
    for num, val in options:
        m.opt.add_option(OptionNumber(num).create_option(decode=raw(val)))
    return m.encode()


def normalized(fields):
    # Compare options the way aiocoap can represent them: uint-typed options as integers
    # (aiocoap drops leading zero bytes), everything else as raw bytes.
    mtype, code, mid, token, options, payload = fields
    opts = [(n, int.from_bytes(v, "big") if is_uint_format(n) else v) for n, v in options]
    return (mtype, code, mid, token, opts, payload)


__all__ = ["UnparsableMessage", "codec"]
