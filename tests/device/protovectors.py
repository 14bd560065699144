# protovectors.py: one schema with every kind of field and byte vectors for it, shared by the
# CPython tests (tests/protobuf: the vectors are checked against the PyPI protobuf package) and
# the MicroPython ones (tests/device/mp_protobuf.py: lib/protobuf on the unix port).
# DESC is tools/protoschema's description of PROTO (a test checks that it still is).
PROTO = """syntax = "proto3";
package t;

enum Color {
  RED = 0;
  GREEN = 1;
  BLUE = 2;
}

message Inner {
  optional string s = 1;
  repeated sint32 z = 2;
}

message All {
  double d = 1;
  float f = 2;
  int32 i32 = 3;
  int64 i64 = 4;
  uint32 u32 = 5;
  uint64 u64 = 6;
  sint32 s32 = 7;
  sint64 s64 = 8;
  fixed32 f32 = 9;
  fixed64 f64 = 10;
  sfixed32 sf32 = 11;
  sfixed64 sf64 = 12;
  bool b = 13;
  string s = 14;
  bytes by = 15;
  Color c = 16;
  optional int32 oi = 17;
  optional string os = 18;
  Inner inner = 19;
  repeated Inner inners = 20;
  repeated int32 ri = 21;
  repeated string rs = 22;
  repeated double rd = 23;
  repeated Color rc = 24;
  repeated bool rb = 25;
  repeated sfixed64 rsf = 26;
  uint32 big = 536870911;
}
"""
DESC = {
    "messages": {
        "t.Inner": [[1, "s", "string", 4], [2, "z", "sint32", 3]],
        "t.All": [
            [1, "d", "double", 0],
            [2, "f", "float", 0],
            [3, "i32", "int32", 0],
            [4, "i64", "int64", 0],
            [5, "u32", "uint32", 0],
            [6, "u64", "uint64", 0],
            [7, "s32", "sint32", 0],
            [8, "s64", "sint64", 0],
            [9, "f32", "fixed32", 0],
            [10, "f64", "fixed64", 0],
            [11, "sf32", "sfixed32", 0],
            [12, "sf64", "sfixed64", 0],
            [13, "b", "bool", 0],
            [14, "s", "string", 0],
            [15, "by", "bytes", 0],
            [16, "c", "t.Color", 0],
            [17, "oi", "int32", 4],
            [18, "os", "string", 4],
            [19, "inner", "t.Inner", 4],
            [20, "inners", "t.Inner", 1],
            [21, "ri", "int32", 3],
            [22, "rs", "string", 1],
            [23, "rd", "double", 3],
            [24, "rc", "t.Color", 3],
            [25, "rb", "bool", 3],
            [26, "rsf", "sfixed64", 3],
            [536870911, "big", "uint32", 0],
        ],
    },
    "enums": {"t.Color": {"RED": 0, "GREEN": 1, "BLUE": 2}},
}
# (fields of t.All, the bytes protobuf serializes them to, as hex)
VECTORS = [
    ({}, ""),
    ({"i32": 150}, "189601"),
    ({"i32": -1}, "18ffffffffffffffffff01"),
    (
        {"i64": -9223372036854775808, "u64": 18446744073709551615},
        "208080808080808080800130ffffffffffffffffff01",
    ),
    ({"s32": -3, "s64": 4611686018427387904}, "38054080808080808080808001"),
    ({"d": 21.5, "f": 0.25, "b": True}, "090000000000803540150000803e6801"),
    (
        {"f32": 4294967295, "f64": 1, "sf32": -2, "sf64": -1099511627776},
        "4dffffffff5101000000000000005dfeffffff610000000000ffffff",
    ),
    ({"s": "héllo", "by": b"\x00\xff", "c": "BLUE"}, "720668c3a96c6c6f7a0200ff800102"),
    ({"oi": 0, "os": ""}, "880100920100"),
    ({"inner": {"s": "x", "z": [-1, 1, -64]}}, "9a01080a0178120301027f"),
    ({"inner": {}}, "9a0100"),
    (
        {"inners": [{"s": "a"}, {}], "ri": [1, -1, 300], "rs": ["", "b"]},
        "a201030a0161a20100aa010d01ffffffffffffffffff01ac02b20100b2010162",
    ),
    (
        {"rd": [1.5, -0.0], "rc": ["RED", "GREEN"], "rb": [True, False], "rsf": [-1]},
        "ba0110000000000000f83f0000000000000080c201020001ca01020100d20108ffffffffffffffff",
    ),
    ({"d": -0.0, "big": 7}, "090000000000000080f8ffffff0f07"),
]
