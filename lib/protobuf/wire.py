# wire.py: the protobuf wire format: varints, zigzag, fixed 32/64-bit values, length-delimited
# fields, and skipping fields nobody asked for. Malformed input raises ProtoError only.
import struct

from micropython import const

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_SGROUP = const(3)  # deprecated groups: only ever skipped
_EGROUP = const(4)
_M64 = const((1 << 64) - 1)


class ProtoError(ValueError):
    pass


def put_varint(buf, n):
    # n >= 0 (callers turn negatives into their 64-bit two's complement first)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def put_key(buf, number, wtype):
    put_varint(buf, number << 3 | wtype)


def put_len(buf, data):
    put_varint(buf, len(data))
    buf.extend(data)


def varint(data, i):
    # -> (value, next index); at most 10 bytes, as every 64-bit value fits in them
    n = shift = 0
    end = len(data)
    while True:
        if i >= end:
            raise ProtoError("truncated varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n & _M64, i
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def zigzag(n):
    return (n << 1) ^ (n >> 63) if n < 0 else n << 1


def unzigzag(n):
    return (n >> 1) ^ -(n & 1)


def signed(n, bits):
    # the low `bits` of n read as two's complement
    n &= (1 << bits) - 1
    return n - (1 << bits) if n >> (bits - 1) else n


def fixed(data, i, size, fmt=None):
    # -> (the fixed-size value at i, next index): unpacked with the struct format fmt, or an
    # unsigned little-endian integer
    end = i + size
    if end > len(data):
        raise ProtoError("truncated fixed%d" % (size * 8))
    if fmt:
        return struct.unpack(fmt, data[i:end])[0], end
    return int.from_bytes(data[i:end], "little"), end


def length(data, i):
    # -> (start, end) of a length-delimited field's bytes
    n, i = varint(data, i)
    end = i + n
    if end > len(data):
        raise ProtoError("length %d runs past the end" % n)
    return i, end


def key(data, i):
    # -> (field number, wire type, next index)
    k, i = varint(data, i)
    number = k >> 3
    if number == 0 or number >= 1 << 29:
        raise ProtoError("bad field number %d" % number)
    return number, k & 7, i


def skip(data, i, number, wtype, depth=0):
    # past one field's value (an unknown field, or one of an unexpected wire type)
    if wtype == VARINT:
        return varint(data, i)[1]
    if wtype == I64:
        return fixed(data, i, 8)[1]
    if wtype == I32:
        return fixed(data, i, 4)[1]
    if wtype == LEN:
        return length(data, i)[1]
    if wtype == _SGROUP:  # deprecated groups: skip up to the matching end
        if depth > 50:
            raise ProtoError("groups nested too deep")
        while True:
            n, t, i = key(data, i)
            if t == _EGROUP:
                if n != number:
                    raise ProtoError("group %d ended by %d" % (number, n))
                return i
            i = skip(data, i, n, t, depth + 1)
    raise ProtoError("bad wire type %d" % wtype)
