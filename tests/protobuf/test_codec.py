# lib/protobuf (the board's codec) against the PyPI protobuf package: the shared byte vectors,
# then hypothesis: random messages encoded by one and decoded by the other both ways, random
# bytes (and mutated messages) decoded by both, where lib/protobuf may fail with ProtoError only
# and must agree with protobuf whenever both accept. PROTO_FUZZ_EXAMPLES=N for a long run.
import math
import os
import struct

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protobuf.message import Schema
from protobuf.wire import ProtoError
from protovectors import DESC, PROTO, VECTORS

from tools.protoschema import description, message_class, parse

EXAMPLES = int(os.environ.get("PROTO_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = Schema(DESC)
All = message_class(PROTO, "t.All")
COLORS = {"RED": 0, "GREEN": 1, "BLUE": 2}


def to_pb(msg, fields):
    # a dict of lib/protobuf's form -> fields of a PyPI message
    for k, v in fields.items():
        f = msg.DESCRIPTOR.fields_by_name[k]
        if f.message_type is not None:
            if f.is_repeated:
                for item in v:
                    to_pb(getattr(msg, k).add(), item)
            else:
                getattr(msg, k).SetInParent()
                to_pb(getattr(msg, k), v)
        elif f.enum_type is not None:
            v = [COLORS.get(x, x) for x in v] if isinstance(v, list) else COLORS.get(v, v)
            getattr(msg, k).extend(v) if isinstance(v, list) else setattr(msg, k, v)
        elif f.is_repeated:
            getattr(msg, k).extend(v)
        else:
            setattr(msg, k, v)
    return msg


def from_pb(msg):
    # a PyPI message -> what lib/protobuf decodes from its bytes (fields on the wire)
    out = {}
    for f, v in msg.ListFields():
        if f.message_type is not None:
            v = [from_pb(x) for x in v] if f.is_repeated else from_pb(v)
        elif f.enum_type is not None:
            names = {n: k for k, n in COLORS.items()}
            v = [names.get(x, x) for x in v] if f.is_repeated else names.get(v, v)
        elif f.is_repeated:
            v = list(v)
        out[f.name] = v
    return out


def same(a, b):
    # equal, with NaN equal to NaN and -0.0 told from 0.0
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


def test_vectors_are_protobufs_bytes_and_desc_is_the_tools():
    assert DESC == description(parse(PROTO))
    for fields, hexed in VECTORS:
        assert to_pb(All(), fields).SerializeToString().hex() == hexed, fields
        assert S.encode("t.All", fields).hex() == hexed, fields
        assert same(S.decode("t.All", bytes.fromhex(hexed)), fields), fields


def test_malformed_input_raises_proto_error():
    for hexed in ("08", "0880", "0a05ab", "ff" * 11, "00", "0c", "0f", "7206c328000000"):
        with pytest.raises(ProtoError):
            S.decode("t.All", bytes.fromhex(hexed))
        with pytest.raises(DecodeError):
            All.FromString(bytes.fromhex(hexed))


# --- hypothesis

I32, I64 = st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1)
U32, U64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
F32 = st.floats(width=32, allow_nan=False)
COLOR = st.sampled_from(list(COLORS))
INNER = st.fixed_dictionaries({}, optional={"s": st.text(), "z": st.lists(I32, max_size=4)})
SCALARS = {
    "d": st.floats(allow_nan=False),
    "f": F32,
    "i32": I32,
    "i64": I64,
    "u32": U32,
    "u64": U64,
    "s32": I32,
    "s64": I64,
    "f32": U32,
    "f64": U64,
    "sf32": I32,
    "sf64": I64,
    "b": st.booleans(),
    "s": st.text(),
    "by": st.binary(),
    "c": COLOR,
    "oi": I32,
    "os": st.text(),
    "inner": INNER,
    "inners": st.lists(INNER, max_size=3),
    "ri": st.lists(I32, max_size=4),
    "rs": st.lists(st.text(), max_size=3),
    "rd": st.lists(st.floats(), max_size=3),
    "rc": st.lists(COLOR, max_size=3),
    "rb": st.lists(st.booleans(), max_size=3),
    "rsf": st.lists(I64, max_size=3),
    "big": U32,
}
MESSAGES = st.fixed_dictionaries({}, optional=SCALARS)


@FUZZ
@given(MESSAGES)
def test_board_encodes_what_protobuf_encodes(fields):
    expected = to_pb(All(), fields).SerializeToString()
    assert S.encode("t.All", fields) == expected
    assert same(S.decode("t.All", expected), from_pb(All.FromString(expected)))


def implicit_defaults_dropped(name, fields):
    # a field without presence that holds its default is not "set" for protobuf: leave it out;
    # nor is a repeated one with no elements (an empty packed field on the wire reads as [])
    out = {}
    for _, fname, ftype, flags in DESC["messages"][name]:
        if fname not in fields or (flags & 1 and fields[fname] == []):
            continue
        v = fields[fname]
        if ftype in DESC["messages"]:
            v = (
                [implicit_defaults_dropped(ftype, x) for x in v]
                if flags & 1
                else (implicit_defaults_dropped(ftype, v))
            )
        elif not flags & 5:  # neither repeated nor with presence
            default = {"string": "", "bytes": b""}.get(ftype, 0)
            if ftype in DESC["enums"]:
                default = "RED"
            if v == default and not str(v).startswith("-"):  # -0.0 is sent, so set
                continue
        out[fname] = v
    return out


def _agree(data):
    try:
        pb = from_pb(All.FromString(data))
    except DecodeError:
        pb = None
    try:
        mine = implicit_defaults_dropped("t.All", S.decode("t.All", data))
    except ProtoError:
        mine = None
    if pb is not None:  # what protobuf reads, the board reads the same way
        assert mine is not None and same(mine, pb), (data.hex(), mine, pb)


@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes_fail_with_proto_error_only_and_agree(data):
    _agree(data)


@FUZZ
@given(MESSAGES, st.data())
def test_mutated_messages_agree(fields, draw):
    data = bytearray(to_pb(All(), fields).SerializeToString())
    for _ in range(draw.draw(st.integers(1, 3))):
        if not data:
            break
        i = draw.draw(st.integers(0, len(data) - 1))
        how = draw.draw(st.sampled_from(["flip", "cut", "dup"]))
        if how == "flip":
            data[i] ^= 1 << draw.draw(st.integers(0, 7))
        elif how == "cut":
            del data[i:]
        else:
            data[i:i] = data[i : i + draw.draw(st.integers(1, 8))]
    _agree(bytes(data))
