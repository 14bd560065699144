# jsonpayload.py: the JSON payload format (ThingsBoard's default profile): what Device and
# provision() send and how they read replies. A module, not an object, so it costs nothing
# but its functions; protopayload.ProtoPayload has the same names for a PROTOBUF profile.
# Encoders return bytes (bytes given are sent as they are); decoders raise ValueError (or
# KeyError / TypeError) for a payload they cannot read.
import json

from micropython import const


def body(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if not isinstance(data, str):
        data = json.dumps(data)
    return data.encode()


def telemetry(data):
    # {"k": v}, [{...}, ...] or {"ts": ms, "values": {...}}; the last written with _TS first,
    # which marks the messages that can travel together in one array (batch)
    if type(data) is dict and len(data) == 2 and "ts" in data and "values" in data:
        return ('{"ts":%d,"values":%s}' % (data["ts"], json.dumps(data["values"]))).encode()
    return body(data)


# json.dumps writes '{"ts": ' (a space after the colon) for a plain "ts" key
_TS = const(b'{"ts":')


def batchable(data):
    return data[:6] == _TS


def batch(data):
    # timestamped messages as one: ThingsBoard takes a JSON array of {"ts", "values"} objects
    return b"[" + b",".join(data) + b"]"


def attributes(data):
    return body(data)


def claim(secret_key, duration_ms):
    # the keys come split from one string: as literals each would be a name every board interns
    d = {}
    for k, v in zip("secretKey durationMs".split(), (secret_key, duration_ms)):
        if v is not None:
            d[k] = v
    return body(d)


def rpc_call(method, params):
    return body({"method": method, "params": params if params is not None else {}})


def rpc_call_reply(raw):
    return json.loads(bytes(raw) or b"null")


def rpc_request(raw):
    # a server-side RPC notification -> (id, method, params)
    rpc = json.loads(raw)
    return int(rpc["id"]), rpc.get("method"), rpc.get("params")


def rpc_reply(reply):
    return body(reply)


def attribute_update(raw):
    # a shared-attribute notification -> {"key": value, ..., "deleted": [...]}
    return json.loads(bytes(raw) or b"{}")


def attribute_response(raw):
    # the reply to GET attributes (empty for 4.04) -> {"client": {...}, "shared": {...}}
    got = json.loads(bytes(raw) or b"null")
    out = {"client": {}, "shared": {}}
    if got is not None:
        # the server's JSON: anything but objects is a bad reply, not a crash later
        if not isinstance(got, dict):
            raise ValueError("attributes reply is not a JSON object")
        for scope in out:
            out[scope] = got.get(scope, {})
            if not isinstance(out[scope], dict):
                raise ValueError("attributes reply: %s is not an object" % scope)
    return out


def provision_request(req):
    return body(req)


def provision_response(raw):
    # -> {"status", "credentialsType", "credentialsValue"} or {"status", "errorMsg"}; {} if
    # the reply is unreadable
    try:
        reply = json.loads(bytes(raw))
    except ValueError:
        return {}
    return reply if isinstance(reply, dict) else {}
