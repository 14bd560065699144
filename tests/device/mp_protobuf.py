# lib/protobuf on the unix port: the byte vectors that the CPython tests check against the PyPI
# protobuf package, malformed input raising ProtoError only, and ThingsBoard's messages as
# lib/thingsboard reads and writes them in protobuf mode.
from binascii import unhexlify

from protobuf.message import Schema
from protobuf.wire import ProtoError
from protovectors import DESC, VECTORS

S = Schema(DESC)


def test_vectors_encode_to_protobufs_bytes():
    for fields, hexed in VECTORS:
        got = S.encode("t.All", fields)
        assert got == unhexlify(hexed), (fields, got, hexed)


def test_vectors_decode_to_their_fields():
    for fields, hexed in VECTORS:
        got = S.decode("t.All", unhexlify(hexed))
        assert got == fields, (got, fields)  # the vectors hold no default values


def test_unknown_fields_are_skipped():
    # field 99 as varint, fixed64, length-delimited, fixed32 and a group, then i32 = 1
    data = unhexlify("98060ea1060102030405060708a20602ababad0601020304bb06080bbc06" + "1801")
    assert S.decode("t.All", data) == {"i32": 1}


def test_malformed_input_raises_proto_error_only():
    bad = ["08", "0880", "0a05ab", "ff" * 11, "00", "0c", "0f", "7206c328000000", "a2010300"]
    for hexed in bad:
        try:
            S.decode("t.All", unhexlify(hexed))
        except ProtoError:
            continue
        raise AssertionError("accepted %s" % hexed)


def test_encoding_checks_types_and_ranges():
    for fields in ({"i32": 2**31}, {"u32": -1}, {"b": 1}, {"s": b"x"}, {"d": "1"}, {"nope": 1}):
        try:
            S.encode("t.All", fields)
        except ProtoError:
            continue
        raise AssertionError("encoded %r" % fields)
    assert S.encode("t.All", {"i32": 3.0}) == S.encode("t.All", {"i32": 3})


def _payload():
    from thingsboard.protopayload import ProtoPayload

    desc = {
        "messages": {
            "r:M": [[1, "payload", "string", 4]],
            "q:R": [
                [1, "method", "string", 4],
                [2, "requestId", "int32", 4],
                [3, "params", "string", 4],
            ],
        }
    }
    desc.update(telemetry="r:M", attributes="r:M", rpc_request="q:R", rpc_response="r:M")
    return ProtoPayload(desc)


def _tb():
    # ThingsBoard's messages by the generic codec, which the device no longer uses for them:
    # the reference the hand-written fields are checked against
    from thingsboard.tbproto import SCHEMA

    return Schema(SCHEMA)


def test_thingsboard_messages_as_the_device_reads_them():
    p, tb = _payload(), _tb()
    # AttributeUpdateNotificationMsg: a long, a double, a JSON value, and one key deleted
    note = tb.encode(
        "tb.AttributeUpdateNotificationMsg",
        {
            "sharedUpdated": [
                {"kv": {"key": "n", "type": "LONG_V", "long_v": 5}},
                {"kv": {"key": "x", "type": "DOUBLE_V", "double_v": 1.5}},
                {"kv": {"key": "j", "type": "JSON_V", "json_v": '{"a":[1]}'}},
            ],
            "sharedDeleted": ["old"],
        },
    )
    assert p.attribute_update(note) == {"n": 5, "x": 1.5, "j": {"a": [1]}, "deleted": ["old"]}
    rpc = p.schema.encode("q:R", {"method": "setGpio", "requestId": 3, "params": "{}"})
    assert p.rpc_request(rpc) == (3, "setGpio", "{}")
    assert p.rpc_reply({"a": 1}) == b'\n\x08{"a": 1}'


def test_every_value_type_of_an_attribute_read_and_proto3_zeros():
    p, tb = _payload(), _tb()
    kvs = [
        {"key": "on", "type": "BOOLEAN_V", "bool_v": True},
        {"key": "off"},  # BOOLEAN_V, false: proto3 sends neither
        {"key": "neg", "type": "LONG_V", "long_v": -(1 << 40)},
        {"key": "zero", "type": "LONG_V"},
        {"key": "pi", "type": "DOUBLE_V", "double_v": 3.25},
        {"key": "nil", "type": "DOUBLE_V"},
        {"key": "s", "type": "STRING_V", "string_v": "h\u00e9"},
        {"key": "e", "type": "STRING_V"},
        {"key": "j", "type": "JSON_V", "json_v": "[1, 2]"},
    ]
    read = tb.encode(
        "tb.GetAttributeResponseMsg",
        {
            "requestId": 7,
            "clientAttributeList": [{"ts": 5, "kv": kvs[0]}],
            "sharedAttributeList": [{"ts": 6, "kv": kv} for kv in kvs[1:]],
            "sharedStateMsg": True,
        },
    )
    got = p.attribute_response(read)
    assert got["client"] == {"on": True}
    want = {"off": False, "neg": -(1 << 40), "zero": 0, "pi": 3.25, "nil": 0.0, "s": "h\u00e9"}
    want.update(e="", j=[1, 2])
    assert got["shared"] == want
    assert type(got["shared"]["nil"]) is float and got["shared"]["off"] is False
    assert p.attribute_update(b"") == {}


def test_client_rpc_and_claim_encode_as_the_generic_codec_does():
    p, tb = _payload(), _tb()
    for method, params in (("getTime", None), ("sum", {"a": [1, 2]})):
        want = {"method": method, "params": "{}" if params is None else '{"a": [1, 2]}'}
        assert p.rpc_call(method, params) == tb.encode("tb.RpcRequest", want)
    for key, ms in (("s3cret", 60000), ("k", None), (None, 0), ("k", -1), ("k", 2.0)):
        want = {"secretKey": key, "durationMs": None if ms is None else int(ms)}
        assert p.claim(key, ms) == tb.encode("tb.ClaimDevice", want), (key, ms)
    for bad in (1.5, True, "10", 1 << 63):
        try:
            p.claim("k", bad)
        except ProtoError:
            continue
        raise AssertionError("claim took %r" % bad)


def test_client_rpc_replies_and_errors():
    p, tb = _payload(), _tb()
    reply = tb.encode("tb.ToServerRpcResponseMsg", {"requestId": 1, "payload": '{"t": 5}'})
    assert p.rpc_call_reply(reply) == {"t": 5}
    assert p.rpc_call_reply(tb.encode("tb.ToServerRpcResponseMsg", {"requestId": 1})) is None
    err = tb.encode("tb.ToServerRpcResponseMsg", {"requestId": 1, "error": "timeout"})
    assert p.rpc_call_reply(err) == {"error": "timeout"}


def test_thingsboards_messages_skip_unknown_fields_and_refuse_malformed_ones():
    p, tb = _payload(), _tb()
    kv = {"key": "n", "type": "LONG_V", "long_v": 5}
    note = tb.encode("tb.AttributeUpdateNotificationMsg", {"sharedUpdated": [{"kv": kv}]})
    # a field of a number it does not know, and field 1 with a wire type it does not have
    extra = b"\x78\x01" + b"\x0d\x00\x00\x00\x00" + note + b"\x9a\x01\x02ab"
    assert p.attribute_update(extra) == {"n": 5}
    bad_type = tb.encode(
        "tb.AttributeUpdateNotificationMsg", {"sharedUpdated": [{"kv": {"key": "n"}}]}
    )
    bad_type = bad_type[:-1] + b"\x10\x09"  # KeyValueType 9
    for raw in (note[:-1], b"\x0a\x05\x12", bad_type, b"\x12\x02\xff\xfe"):
        try:
            p.attribute_update(raw)
        except ProtoError:
            continue
        raise AssertionError("read %r" % raw)
