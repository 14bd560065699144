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


def test_thingsboard_messages_as_the_device_reads_them():
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
    p = ProtoPayload(desc)
    # AttributeUpdateNotificationMsg: a long, a double, a JSON value, and one key deleted
    note = p.tb.encode(
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
