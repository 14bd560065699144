# protopayload.py: the payload format of a ThingsBoard PROTOBUF device profile, with the same
# names as jsonpayload. Telemetry, client attributes and server-side RPC use the profile's
# schemas (a schema file made by tools/protoschema); ThingsBoard's own messages (transport.
# proto: attribute notifications and reads, client RPC, claim) are read and written here field
# by field, as a Schema of them would keep its tables in RAM for the few fields used.
# Provisioning's are in protoprovision. Imported only in protobuf mode, so JSON devices never
# load it.
import json

from micropython import const
from protobuf.message import Schema, find
from protobuf.wire import (
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
    signed,
    skip,
    varint,
)

_ROLES = const(("telemetry", "attributes", "rpc_request", "rpc_response"))


def load(path, log=None):
    """The ProtoPayload of a schema file; ValueError says what is wrong with it."""
    try:
        with open(path) as f:
            desc = json.load(f)
    except OSError as e:
        raise ValueError("cannot read %s (%s)" % (path, e)) from None
    except ValueError:
        raise ValueError("%s is not JSON (make it with tools/protoschema)" % path) from None
    return ProtoPayload(desc, log)


class ProtoPayload:
    def __init__(self, desc, log=None):
        if not isinstance(desc, dict) or not isinstance(desc.get("messages"), dict):
            raise ValueError("not a schema description (make it with tools/protoschema)")
        for role in _ROLES:
            if desc.get(role) not in desc["messages"]:
                raise ValueError("the schema description has no %s message" % role)
        self.schema = Schema(desc)
        self.roots = {role: desc[role] for role in _ROLES}
        self.log = log or (lambda *a: None)
        self._dropped = set()  # keys already reported as not sent

    # --- uplink

    def telemetry(self, data):
        if isinstance(data, (bytes, bytearray, memoryview)):
            return data
        if not isinstance(data, dict):
            raise ProtoError("telemetry: a protobuf message carries one object, not a list")
        root = self.roots["telemetry"]
        fields = self.schema.fields(root)
        values = find(fields, "values")
        stamped = "ts" in data and "values" in data
        if stamped and not (values and find(fields, "ts")):
            data = data["values"]  # the schema has no place for it: the server's time is used
        elif not stamped and values and data and not any(find(fields, k) for k in data):
            data = {"values": data}  # a ts/values schema, no clock yet
        return self._lenient(root, data, "telemetry")

    def batchable(self, msg):
        return False  # a protobuf telemetry message carries one object

    def attributes(self, data):
        if isinstance(data, (bytes, bytearray, memoryview)):
            return data
        return self._lenient(self.roots["attributes"], data, "attributes")

    def claim(self, secret_key, duration_ms):
        buf = _string(bytearray(), 1, secret_key)  # ClaimDevice: secretKey, durationMs
        return bytes(_int64(buf, 2, duration_ms))

    def rpc_call(self, method, params):
        buf = _string(bytearray(), 1, method)  # RpcRequest: method, params (JSON text)
        return bytes(_string(buf, 2, json.dumps(params if params is not None else {})))

    def rpc_reply(self, reply):
        if isinstance(reply, (bytes, bytearray, memoryview)):
            return reply
        root = self.roots["rpc_response"]
        fields = self.schema.fields(root)
        if isinstance(reply, dict) and all(find(fields, k) for k in reply):
            return self._lenient(root, reply, "rpc reply")
        for f in fields:  # as JSON text in the first string field ("payload")
            if f[2] == "string" and not f[3] & 1:
                return self.schema.encode(root, {f[1]: json.dumps(reply)})
        return self._lenient(root, reply if isinstance(reply, dict) else {}, "rpc reply")

    def _lenient(self, name, obj, what):
        # field by field (a message is the concatenation of its fields): a key the schema
        # lacks, or a value it cannot take, is left out and reported once
        fields = self.schema.fields(name)
        out = bytearray()
        known = 0
        for f in fields:
            if f[1] not in obj:
                continue
            known += 1
            v = obj[f[1]]
            if v is None:
                continue
            mark = len(out)
            try:
                if f[2] in self.schema.messages and not f[3] & 1 and isinstance(v, dict):
                    put_key(out, f[0], LEN)
                    put_len(out, self._lenient(f[2], v, what))
                else:
                    self.schema.encode_field(out, f, v)
            except ProtoError as e:
                out = out[:mark]  # what the bad value began to write goes
                self._drop(what, f[1], e)
        if known < len(obj):
            for k in obj:
                if find(fields, k) is None:
                    self._drop(what, k, "not in the %s schema" % what)
        return out

    def _drop(self, what, key, why):
        if key not in self._dropped:
            self._dropped.add(key)
            self.log("%s key %s not sent:" % (what, key), why)

    # --- downlink

    def rpc_request(self, raw):
        d = self.schema.decode(self.roots["rpc_request"], raw)
        return int(d.get("requestId", 0)), d.get("method"), d.get("params")

    def rpc_call_reply(self, raw):
        f = _fields(raw)  # ToServerRpcResponseMsg: requestId, payload, error
        error = _text(f, 3)
        if error:
            return {"error": error}
        text = _text(f, 2)
        return json.loads(text) if text else None

    def attribute_update(self, raw):
        f = _fields(raw)  # AttributeUpdateNotificationMsg: sharedUpdated, sharedDeleted
        out = _values(f, 1)
        deleted = [_str(v) for t, v in f if t == (2, LEN)]
        if deleted:
            out["deleted"] = deleted
        return out

    def attribute_response(self, raw):
        # GetAttributeResponseMsg: requestId, clientAttributeList, sharedAttributeList, ...
        f = _fields(raw)
        return {"client": _values(f, 2), "shared": _values(f, 3)}

    # --- provisioning: once, at first boot, so its code is loaded only then

    def provision_request(self, req):
        from .protoprovision import request

        return request(req)

    def provision_response(self, raw):
        from .protoprovision import response

        return response(raw)


def _string(buf, number, v):
    # field number, a string, onto buf (proto3 leaves out ""; None: not set) -> buf
    if v:
        if not isinstance(v, str):
            raise ProtoError("field %d: expected a string, got %r" % (number, v))
        put_key(buf, number, LEN)
        put_len(buf, v.encode())
    return buf


def _int64(buf, number, v):
    # field number, an int64, onto buf as a varint (negatives as 64-bit two's complement)
    if isinstance(v, float) and v == int(v):
        v = int(v)  # 3.0 is a fine integer; 3.5 is not
    if v is None:
        return buf
    if type(v) is not int or not -(1 << 63) <= v < 1 << 63:
        raise ProtoError("field %d: expected an int64, got %r" % (number, v))
    if v:  # proto3 leaves out 0
        put_key(buf, number, VARINT)
        put_varint(buf, v & 0xFFFFFFFFFFFFFFFF)
    return buf


def _fields(data):
    # a message's fields as [((number, wire type), value)] in wire order: a varint as an int,
    # anything else as its bytes (a memoryview into data)
    out = []
    i, end = 0, len(data)
    while i < end:
        number, wtype, i = key(data, i)
        start = i
        if wtype == VARINT:
            v, i = varint(data, i)
        elif wtype == LEN:
            start, i = length(data, i)
            v = memoryview(data)[start:i]
        else:
            i = skip(data, i, number, wtype)
            v = memoryview(data)[start:i]
        out.append(((number, wtype), v))
    return out


def _last(f, number, wtype):
    # the value of a field that is not repeated: the last one on the wire, as protobuf reads it
    v = None
    for t, x in f:
        if t == (number, wtype):
            v = x
    return v


def _text(f, number):
    v = _last(f, number, LEN)
    return "" if v is None else _str(v)


def _str(v):
    try:
        return bytes(v).decode()
    except UnicodeError:
        raise ProtoError("invalid UTF-8 in a string") from None


def _values(f, number):
    # field number's TsKvProto {ts, kv: KeyValueProto} -> {key: value}, each value by its type
    # (KeyValueType: BOOLEAN_V, LONG_V, DOUBLE_V, STRING_V, JSON_V, in fields 3-7)
    out = {}
    for t, tskv in f:
        if t != (number, LEN):
            continue
        kv = _fields(_last(_fields(tskv), 2, LEN) or b"")
        kind = _last(kv, 2, VARINT) or 0
        if kind in (0, 1):
            v = _last(kv, 3 + kind, VARINT) or 0
            v = v != 0 if kind == 0 else signed(v, 64)
        elif kind == 2:
            v = _last(kv, 5, I64)
            v = fixed(v, 0, 8, "<d")[0] if v is not None else 0.0
        elif kind in (3, 4):
            v = _text(kv, 3 + kind)
            if kind == 4:
                v = json.loads(v) if v else None
        else:
            raise ProtoError("unknown value type %d" % kind)
        out[_text(kv, 1)] = v
    return out
