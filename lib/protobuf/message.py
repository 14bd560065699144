# message.py: encode dicts to protobuf messages and decode them back, by a compact schema:
#   {"messages": {"pkg.Msg": [[number, "name", "type", flags], ...]},
#    "enums": {"pkg.Enum": {"NAME": number}}}
# type: a scalar name (double float int32 int64 uint32 uint64 sint32 sint64 fixed32 fixed64
# sfixed32 sfixed64 bool string bytes) or the full name of a message or enum of the schema.
# flags, added up: 1 repeated, 2 packed (numeric repeated fields, proto3's default), 4 presence
# (optional, message and oneof fields: sent even when 0/""/false). Encoding writes fields in number
# order, as protobuf's own serializers do, so both give the same bytes. Decoding keeps the
# fields found on the wire, skips unknown ones, and raises ProtoError for malformed input.
import math
import struct

from micropython import const

from .wire import (
    I32,
    I64,
    LEN,
    VARINT,
    ProtoError,
    fixed,
    key,
    length,
    put_key,
    put_len,
    put_varint,
    skip,
    unzigzag,
    varint,
    zigzag,
)

_REPEATED = const(1)  # a field's flags (tools/protoschema writes them)
_PACKED = const(2)
_PRESENCE = const(4)
_M32 = const((1 << 32) - 1)
_M64 = const((1 << 64) - 1)
_S32 = const(1 << 31)
_S64 = const(1 << 63)
# The scalar types by name. The names come split from one string: as literals of 10
# characters or fewer, mpy-cross would make each a name that a board interns in RAM.
# integers -> (wire type, bytes of a fixed type or 0 for a varint, zigzag, mask, low, high)
_INTS = dict(
    zip(
        "int32 int64 uint32 uint64 sint32 sint64 fixed32 fixed64 sfixed32 sfixed64".split(),
        (
            (VARINT, 0, False, _M32, -_S32, _S32 - 1),
            (VARINT, 0, False, _M64, -_S64, _S64 - 1),
            (VARINT, 0, False, _M32, 0, _M32),
            (VARINT, 0, False, _M64, 0, _M64),
            (VARINT, 0, True, _M32, -_S32, _S32 - 1),
            (VARINT, 0, True, _M64, -_S64, _S64 - 1),
            (I32, 4, False, _M32, 0, _M32),
            (I64, 8, False, _M64, 0, _M64),
            (I32, 4, False, _M32, -_S32, _S32 - 1),
            (I64, 8, False, _M64, -_S64, _S64 - 1),
        ),
    )
)
# floats -> (wire type, struct format, scratch buffer: packed without a new bytes each)
_FLOATS = dict(zip("double float".split(), ((I64, "<d", bytearray(8)), (I32, "<f", bytearray(4)))))


class Schema:
    def __init__(self, desc):
        self.messages = desc.get("messages", {})
        self.enums = desc.get("enums", {})
        for name, fields in self.messages.items():
            if not isinstance(fields, list):
                raise ProtoError("%s: its fields are not a list" % name)
            fields.sort()  # by number, in place (no copy): encoding and find() go in that order
        self._names = {}  # enum name -> {number: NAME}

    def fields(self, name):
        # the message's fields in number order
        fields = self.messages.get(name)
        if fields is None:
            raise ProtoError("no message %s in the schema" % name)
        return fields

    # --- encoding

    def encode(self, name, obj):
        buf = bytearray()
        self._message(buf, name, obj)
        return bytes(buf)

    def encode_field(self, buf, field, value):
        # one field (an entry of the schema) onto buf: a message is the concatenation of its
        # fields, so a caller may encode them one by one and leave out a bad one
        if value is not None:
            self._field(buf, field, value)

    def _message(self, buf, name, obj):
        if not isinstance(obj, dict):
            raise ProtoError("%s: expected a dict, got %s" % (name, type(obj).__name__))
        fields = self.fields(name)
        for k in obj:
            if find(fields, k) is None:
                raise ProtoError("%s has no field %s" % (name, k))
        for field in fields:
            value = obj.get(field[1])
            if value is not None:
                self._field(buf, field, value)

    def _field(self, buf, field, value):
        number, fname, ftype, flags = field
        if not flags & _REPEATED:
            self._one(buf, number, ftype, value, flags & _PRESENCE, fname)
            return
        if not isinstance(value, (list, tuple)):
            raise ProtoError("%s: expected a list" % fname)
        if flags & _PACKED:
            if value:
                body = bytearray()
                for v in value:
                    self._scalar(body, ftype, v, fname)
                put_key(buf, number, LEN)
                put_len(buf, body)
            return
        for v in value:
            self._one(buf, number, ftype, v, True, fname)

    def _one(self, buf, number, ftype, value, always, fname):
        wtype = self._wtype(ftype)
        if wtype != LEN:  # a scalar
            if always or not self._zero(ftype, value):  # proto3 leaves out 0 / false
                put_key(buf, number, wtype)
                self._scalar(buf, ftype, value, fname)
            return
        if ftype == "string":
            if not isinstance(value, str):
                raise ProtoError("%s: expected a string" % fname)
            data = value.encode()
        elif ftype == "bytes":
            if not isinstance(value, (bytes, bytearray)):
                raise ProtoError("%s: expected bytes" % fname)
            data = value
        else:
            body = bytearray()
            self._message(body, ftype, value)
            put_key(buf, number, LEN)
            put_len(buf, body)
            return
        if data or always:
            put_key(buf, number, LEN)
            put_len(buf, data)

    def _zero(self, ftype, v):
        # the default value, which a field without presence does not send (-0.0 is not it)
        if ftype in self.enums and isinstance(v, str):
            return self.enums[ftype].get(v) == 0
        if isinstance(v, float):
            return v == 0 and (ftype not in _FLOATS or math.copysign(1.0, v) > 0)
        return v == 0 and (ftype == "bool") == isinstance(v, bool)

    def _scalar(self, buf, ftype, v, fname):
        row = _FLOATS.get(ftype)
        if row:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ProtoError("%s: expected a number" % fname)
            fmt, scratch = row[1], row[2]
            try:
                struct.pack_into(fmt, scratch, 0, v)
            except OverflowError:  # too big for a float: infinity, as protobuf stores it
                # not math.inf: mpy-cross folds it to a constant that cannot be frozen
                struct.pack_into(fmt, scratch, 0, v * float("inf"))
            buf.extend(scratch)
            return
        if ftype == "bool":
            if not isinstance(v, bool):
                raise ProtoError("%s: expected true or false" % fname)
            buf.append(1 if v else 0)
            return
        row = _INTS.get(ftype)
        if row is None:  # an enum: an int32 on the wire
            if isinstance(v, str):
                n = self.enums[ftype].get(v)
                if n is None:
                    raise ProtoError("%s: %s is not a value of %s" % (fname, v, ftype))
                v = n
            row = _INTS["int32"]
        if isinstance(v, float) and v == int(v):
            v = int(v)  # 3.0 is a fine integer; 3.5 is not
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtoError("%s: expected an integer" % fname)
        _, size, zig, mask, lo, hi = row
        if not lo <= v <= hi:
            raise ProtoError("%s: %d is out of range for %s" % (fname, v, ftype))
        if size:  # little-endian two's complement
            buf.extend((v & mask).to_bytes(size, "little"))
        elif zig:
            put_varint(buf, zigzag(v))
        else:
            put_varint(buf, v & _M64)

    # --- decoding

    def decode(self, name, data, _depth=0):
        if _depth > 32:
            raise ProtoError("messages nested too deep")
        fields = self.fields(name)
        out = {}
        i, end = 0, len(data)
        while i < end:
            number, wtype, i = key(data, i)
            field = find(fields, number, 0)
            if field is None:
                i = skip(data, i, number, wtype)
                continue
            _, fname, ftype, flags = field
            if flags & _REPEATED and wtype == LEN and self._wtype(ftype) != LEN:
                start, i = length(data, i)
                items = out.setdefault(fname, [])
                j = start
                while j < i:
                    v, j = self._read(data, j, ftype, self._wtype(ftype))
                    items.append(v)
                if j != i:
                    raise ProtoError("%s: packed values run past their length" % fname)
                continue
            if wtype != self._wtype(ftype):
                i = skip(data, i, number, wtype)  # as protobuf does: an unknown field
                continue
            if ftype in self.messages:
                start, i = length(data, i)
                v = self.decode(ftype, memoryview(data)[start:i], _depth + 1)
                if flags & _REPEATED:
                    out.setdefault(fname, []).append(v)
                elif fname in out:
                    _merge(out[fname], v)
                else:
                    out[fname] = v
                continue
            v, i = self._read(data, i, ftype, wtype)
            if flags & _REPEATED:
                out.setdefault(fname, []).append(v)
            else:
                out[fname] = v
        return out

    def _wtype(self, ftype):
        row = _INTS.get(ftype) or _FLOATS.get(ftype)
        if row:
            return row[0]
        if ftype == "bool" or ftype in self.enums:
            return VARINT
        return LEN

    def _read(self, data, i, ftype, wtype):
        row = _FLOATS.get(ftype)
        if row:
            return fixed(data, i, len(row[2]), row[1])
        row = _INTS.get(ftype)
        if row:
            _, size, zig, mask, lo, hi = row
            n, i = fixed(data, i, size) if size else varint(data, i)
            if zig:
                return unzigzag(n & mask), i
            return _fit(n, mask, hi), i
        if ftype == "bool":
            n, i = varint(data, i)
            return n != 0, i
        if ftype in self.enums:
            n, i = varint(data, i)
            n = _fit(n, _M32, _S32 - 1)
            names = self._names.get(ftype)
            if names is None:
                e = self.enums[ftype]
                names = self._names[ftype] = {e[k]: k for k in e}
            return names.get(n, n), i
        start, i = length(data, i)
        raw = bytes(data[start:i])
        if ftype == "bytes":
            return raw, i
        try:
            return raw.decode(), i
        except UnicodeError:
            raise ProtoError("invalid UTF-8 in a string") from None


def _fit(n, mask, hi):
    # n's low bits (mask) as the type whose largest value is hi takes them: over hi, they are
    # a negative number's two's complement
    n &= mask
    return n - mask - 1 if n > hi else n


def find(fields, value, at=1):
    # the field whose entry `at` (a field is [number, name, type, flags]) is value, or None
    for f in fields:
        if f[at] == value:
            return f
    return None


def _merge(old, new):
    # a message field seen twice: protobuf merges the second into the first
    for k, v in new.items():
        if k in old and isinstance(v, dict) and isinstance(old[k], dict):
            _merge(old[k], v)
        elif k in old and isinstance(v, list):
            old[k].extend(v)
        else:
            old[k] = v
