# protopayload.py: the payload format of a ThingsBoard PROTOBUF device profile, with the same
# names as jsonpayload. Telemetry, client attributes and server-side RPC use the profile's
# schemas (a schema file made by tools/protoschema); everything else ThingsBoard's fixed
# messages (tbproto). Imported only in protobuf mode, so JSON devices never load it.
import json
import sys

from protobuf.message import NAME, Schema, find
from protobuf.wire import LEN, ProtoError, put_key, put_len

# ThingsBoard's messages a running device reads and writes; tbproto also has provisioning's
_RUNNING = (
    "tb.AttributeUpdateNotificationMsg",
    "tb.GetAttributeResponseMsg",
    "tb.TsKvProto",
    "tb.KeyValueProto",
    "tb.RpcRequest",
    "tb.ToServerRpcResponseMsg",
    "tb.ClaimDevice",
)
ROLES = ("telemetry", "attributes", "rpc_request", "rpc_response")
_VALUE = {
    "BOOLEAN_V": "bool_v",
    "LONG_V": "long_v",
    "DOUBLE_V": "double_v",
    "STRING_V": "string_v",
}
_DEFAULTS = {"bool_v": False, "long_v": 0, "double_v": 0.0, "string_v": ""}


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
        for role in ROLES:
            if desc.get(role) not in desc["messages"]:
                raise ValueError("the schema description has no %s message" % role)
        self.schema = Schema(desc)
        self.tb = _thingsboard(_RUNNING)
        self.roots = {role: desc[role] for role in ROLES}
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
        values = find(fields, NAME, "values")
        stamped = "ts" in data and "values" in data
        if stamped and not (values and find(fields, NAME, "ts")):
            data = data["values"]  # the schema has no place for it: the server's time is used
        elif not stamped and values and data and not any(find(fields, NAME, k) for k in data):
            data = {"values": data}  # a ts/values schema, no clock yet
        return self._lenient(root, data, "telemetry")

    def batchable(self, msg):
        return False  # a protobuf telemetry message carries one object

    def attributes(self, data):
        if isinstance(data, (bytes, bytearray, memoryview)):
            return data
        return self._lenient(self.roots["attributes"], data, "attribute")

    def claim(self, secret_key, duration_ms):
        return self.tb.encode(
            "tb.ClaimDevice", {"secretKey": secret_key, "durationMs": duration_ms}
        )

    def rpc_call(self, method, params):
        params = json.dumps(params if params is not None else {})
        return self.tb.encode("tb.RpcRequest", {"method": method, "params": params})

    def rpc_reply(self, reply):
        if isinstance(reply, (bytes, bytearray, memoryview)):
            return reply
        root = self.roots["rpc_response"]
        fields = self.schema.fields(root)
        if isinstance(reply, dict) and all(find(fields, NAME, k) for k in reply):
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
                if find(fields, NAME, k) is None:
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
        d = self.tb.decode("tb.ToServerRpcResponseMsg", raw)
        if d.get("error"):
            return {"error": d["error"]}
        return json.loads(d.get("payload") or "null")

    def attribute_update(self, raw):
        d = self.tb.decode("tb.AttributeUpdateNotificationMsg", raw)
        out = _values(d.get("sharedUpdated", ()))
        if d.get("sharedDeleted"):
            out["deleted"] = d["sharedDeleted"]
        return out

    def attribute_response(self, raw):
        d = self.tb.decode("tb.GetAttributeResponseMsg", raw)
        return {
            "client": _values(d.get("clientAttributeList", ())),
            "shared": _values(d.get("sharedAttributeList", ())),
        }

    # --- provisioning: once, at first boot, so its code is loaded only then

    def provision_request(self, req):
        from .protoprovision import request

        return request(_thingsboard(), req)

    def provision_response(self, raw):
        from .protoprovision import response

        return response(_thingsboard(), raw)


def _thingsboard(names=None):
    # a Schema of tbproto's messages (names: only those, with the enums they use). tbproto is
    # not kept: its table holds 5 KB of RAM, and provisioning's part of it is needed once
    from . import tbproto

    del sys.modules[tbproto.__name__]
    delattr(sys.modules[__name__.rpartition(".")[0]], "tbproto")
    desc = tbproto.SCHEMA
    if names:
        messages = {name: desc["messages"][name] for name in names}
        types = [f[2] for fields in messages.values() for f in fields]
        desc = {
            "messages": messages,
            "enums": {t: desc["enums"][t] for t in types if t in desc["enums"]},
        }
    return Schema(desc)


def _values(tskvs):
    # [TsKvProto] -> {key: value}, each value by its KeyValueType
    out = {}
    for tskv in tskvs:
        kv = tskv.get("kv", {})
        kind = kv.get("type", "BOOLEAN_V")
        if kind == "JSON_V":
            value = json.loads(kv.get("json_v") or "null")
        else:
            field = _VALUE.get(kind)
            if field is None:
                raise ProtoError("unknown value type %s" % kind)
            value = kv.get(field, _DEFAULTS[field])
        out[kv.get("key", "")] = value
    return out
