# Byte vectors: our encoder against an RFC 7252 reference layout and aiocoap, both directions.
import aiocoap
import pytest
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import Type
from codec_support import (
    MAX_EXT,
    aio_decode,
    aio_encode,
    codec,
    expected_options,
    ours_decode,
    ours_encode,
    raw,
    rfc_ext,
    rfc_message,
)

from coap.message import Message

BOUNDARIES = [0, 1, 12, 13, 14, 268, 269, 270, 1000, 2048, 65000, MAX_EXT]


def check_both_ways(mtype, code, mid, token=b"", options=(), payload=b"", aio=True):
    """Encode with us, compare with the reference layout, and cross-check with aiocoap."""
    want_opts = expected_options(options)
    want = (mtype, code, mid, bytes(token), want_opts, bytes(payload))
    data = ours_encode(mtype, code, mid, token, options, payload)
    assert data == rfc_message(mtype, code, mid, bytes(token), want_opts, bytes(payload))
    assert ours_decode(data) == want
    assert aio_decode(data) == want  # aiocoap reads what we write
    if aio:
        theirs = aio_encode(mtype, code, mid, token, want_opts, payload)
        assert theirs == data  # aiocoap writes the very same bytes
        assert ours_decode(theirs) == want
    return data


# --- fixed vectors, written from the RFC 7252 §3 layout -------------------------------------

FIXED = [
    # CON GET mid 0x7d34, Uri-Path "temperature" (RFC 7252 fig. 16 style)
    (
        "40017d34bb74656d7065726174757265",
        (0, codec.GET, 0x7D34, b"", [(11, b"temperature")], b""),
    ),
    # piggybacked ACK 2.05 with payload "22.3 C"
    ("60457d34ff32322e332043", (2, codec.CONTENT, 0x7D34, b"", [], b"22.3 C")),
    # CON GET token 71, Observe 0 (empty), Uri-Path "temperature" (RFC 7641 registration)
    (
        "41017d357160" + "5b74656d7065726174757265",
        (0, codec.GET, 0x7D35, b"\x71", [(6, b""), (11, b"temperature")], b""),
    ),
    # NON 2.05 token deadbeef, Observe 12, Content-Format 0 (empty), Max-Age 60, "hi"
    (
        "54451234deadbeef" + "610c" + "60" + "213c" + "ff6869",
        (
            1,
            codec.CONTENT,
            0x1234,
            b"\xde\xad\xbe\xef",
            [(6, b"\x0c"), (12, b""), (14, b"\x3c")],
            b"hi",
        ),
    ),
    # empty ACK and RST
    ("6000abcd", (2, 0, 0xABCD, b"", [], b"")),
    ("70001234", (3, 0, 0x1234, b"", [], b"")),
    # option 2048 (delta 2048: nibble 14, 2048-269 = 0x06f3), one byte value
    ("40010001e106f378", (0, codec.GET, 1, b"", [(2048, b"x")], b"")),
    # Block2 (23): delta 23 -> nibble 13 + 0x0a; value 0x16 = NUM 1, M 0, SZX 6
    (
        "45010002a1b2c3d4e5d10a16",
        (0, codec.GET, 2, bytes.fromhex("a1b2c3d4e5"), [(23, b"\x16")], b""),
    ),
    # 2.05 mid 3, ETag of 13 zero bytes: delta 4, length nibble 13 + ext 0x00
    ("60450003" + "4d00" + "00" * 13, (2, codec.CONTENT, 3, b"", [(4, bytes(13))], b"")),
    # 8-byte token, no options, payload 0xff (payload may start with 0xff)
    (
        "48020007" + "0102030405060708" + "ffff",
        (0, codec.POST, 7, bytes(range(1, 9)), [], b"\xff"),
    ),
]


@pytest.mark.parametrize("hexdata,fields", FIXED)
def test_fixed_vector(hexdata, fields):
    data = bytes.fromhex(hexdata)
    assert ours_decode(data) == fields
    assert aio_decode(data) == fields
    assert ours_encode(*fields) == data
    assert aio_encode(*fields) == data
    assert Message.decode(data).encode() == data


def test_fixed_vector_max_delta_aiocoap_cannot_write():
    # delta 65804 = 14-form 0xffff; legal per RFC 7252 but aiocoap refuses to write it
    data = bytes.fromhex("40010009e0ffff")
    fields = (0, codec.GET, 9, b"", [(MAX_EXT, b"")], b"")
    assert ours_decode(data) == fields
    assert aio_decode(data) == fields
    assert ours_encode(*fields) == data


# --- header fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("tkl", range(9))
def test_token_lengths(tkl):
    token = bytes(range(0xF0, 0xF0 + tkl))
    data = check_both_ways(0, codec.GET, 0x1234, token, [(11, b"a")], b"p")
    assert data[0] == 0x40 | tkl
    assert data[4 : 4 + tkl] == token
    assert codec.View().parse(data, len(data)).token_is(token)


@pytest.mark.parametrize("mtype", range(4))
def test_message_types(mtype):
    data = check_both_ways(mtype, codec.CONTENT, 0xFFFF, b"\x01", [], b"x")
    assert data[0] == 0x41 | mtype << 4
    assert aiocoap.Message.decode(data).mtype == Type(mtype)


@pytest.mark.parametrize("mid", [0, 1, 0xFF, 0x100, 0xFFFF])
@pytest.mark.parametrize("code", [1, 2, 3, 4, 69, 95, 132, 160, 164, 255])
def test_code_and_mid(code, mid):
    data = check_both_ways(1, code, mid)
    assert data == bytes([0x50, code, mid >> 8, mid & 0xFF])


@pytest.mark.parametrize("mtype", range(4))
def test_empty_message(mtype):
    data = check_both_ways(mtype, codec.EMPTY, 0x0102)
    assert data == bytes([0x40 | mtype << 4, 0, 1, 2])
    assert len(data) == 4


# --- option delta and length forms -----------------------------------------------------------


@pytest.mark.parametrize("num", BOUNDARIES)
def test_first_option_delta(num):
    # the first option's delta is its number
    data = check_both_ways(0, codec.GET, 5, b"", [(num, b"")], aio=num < MAX_EXT)
    nibble, ext = rfc_ext(num)
    assert data[4] == nibble << 4
    assert data[5:] == ext
    assert len(data) == 5 + {0: 0, 13: 1, 14: 2}.get(nibble, 0)


@pytest.mark.parametrize("delta", BOUNDARIES)
def test_delta_between_options(delta):
    opts = [(1000, b"a"), (1000 + delta, b"b")]
    data = check_both_ways(0, codec.PUT, 5, b"", opts, aio=delta < MAX_EXT)
    nibble, ext = rfc_ext(delta)
    second = 4 + 3 + 1  # header, first option (nibble 14 + 2 bytes), its value
    assert data[second] == nibble << 4 | 1
    assert data[second + 1 : second + 1 + len(ext)] == ext


@pytest.mark.parametrize("length", BOUNDARIES)
def test_value_length(length):
    value = bytes(i & 0xFF for i in range(length))
    data = check_both_ways(2, codec.CONTENT, 6, b"t", [(4, value)], b"", aio=length < MAX_EXT)
    nibble, ext = rfc_ext(length)
    assert data[5] == 4 << 4 | nibble
    assert data[6 : 6 + len(ext)] == ext
    assert data[6 + len(ext) :] == value


def test_large_delta_and_length_together():
    value = b"v" * 1000
    opts = [(2048, value), (2048 + 65000, b"w" * 269)]
    data = check_both_ways(0, codec.POST, 7, b"", opts, b"payload")
    assert data[4] == 0xEE
    assert data[5:9] == (2048 - 269).to_bytes(2, "big") + (1000 - 269).to_bytes(2, "big")


def test_max_delta_and_length_aiocoap_decodes():
    # 65804 is the largest delta/length RFC 7252 can express; aiocoap decodes but cannot encode
    opts = [(MAX_EXT, b"\xab" * MAX_EXT), (2 * MAX_EXT, b"")]
    data = check_both_ways(0, codec.PUT, 8, b"", opts, b"z", aio=False)
    assert data[4:9] == b"\xee\xff\xff\xff\xff"
    with pytest.raises(ValueError):
        aio_encode(0, codec.PUT, 8, b"", opts, b"z")


# --- option formats --------------------------------------------------------------------------

UINT_OPTIONS = [
    codec.OBSERVE,
    codec.URI_PORT,
    codec.CONTENT_FORMAT,
    codec.MAX_AGE,
    codec.ACCEPT,
    codec.BLOCK2,
    codec.BLOCK1,
    codec.SIZE2,
    codec.SIZE1,
    codec.NO_RESPONSE,
]
UINT_VALUES = [(0, 0), (1, 1), (255, 1), (256, 2), (65535, 2), (2**24 - 1, 3), (2**32 - 1, 4)]


@pytest.mark.parametrize("value,nbytes", UINT_VALUES)
@pytest.mark.parametrize("num", UINT_OPTIONS)
def test_uint_option(num, value, nbytes):
    data = check_both_ways(2, codec.CONTENT, 9, b"", [(num, value)])
    nibble, ext = rfc_ext(num)
    assert data[4] == nibble << 4 | nbytes  # minimal length: 0 is empty
    assert data[5 + len(ext) :] == value.to_bytes(nbytes, "big")
    view = codec.View().parse(data, len(data))
    assert view.uint(num) == value
    assert view.uint(num + 1, "absent") == "absent"
    assert Message.decode(data).uint(num) == value
    m = aiocoap.Message.decode(data)
    (opt,) = m.opt.get_option(OptionNumber(num))
    if num in (codec.BLOCK1, codec.BLOCK2):
        assert opt.value.block_number == value >> 4
        assert opt.value.more == bool(value & 8)
        assert opt.value.size_exponent == value & 7
    else:
        assert int(opt.value) == value


def test_uint_option_leading_zeros_decode():
    # a non-minimal uint on the wire still reads as its value
    data = bytes.fromhex("60450001" + "63000102")  # Observe 0x000102
    assert codec.View().parse(data, len(data)).uint(codec.OBSERVE) == 0x102
    assert Message.decode(data).uint(codec.OBSERVE) == 0x102
    assert aiocoap.Message.decode(data).opt.observe == 0x102


def test_empty_option_if_none_match():
    data = check_both_ways(0, codec.PUT, 10, b"", [(codec.IF_NONE_MATCH, b"")], b"new")
    assert data == bytes.fromhex("4003000a50ff6e6577")
    assert aiocoap.Message.decode(data).opt.if_none_match is True
    m = aiocoap.Message(code=aiocoap.PUT, payload=b"new")
    m.mtype, m.mid = Type.CON, 10
    m.opt.if_none_match = True
    assert m.encode() == data


@pytest.mark.parametrize("value", [b"", b"\x00", b"\xff", bytes(range(8)), b"\x00" * 8])
def test_opaque_etag(value):
    data = check_both_ways(2, codec.VALID, 11, b"", [(codec.ETAG, value)])
    assert aiocoap.Message.decode(data).opt.etag == value
    assert codec.View().parse(data, len(data)).option(codec.ETAG) == value


def test_repeated_if_match_keeps_order():
    tags = [b"\x03", b"", b"\x01\x02", b"\x00"]
    opts = [(codec.IF_MATCH, t) for t in tags]
    data = check_both_ways(0, codec.PUT, 12, b"", opts)
    assert data[4:] == b"\x11\x03" + b"\x00" + b"\x02\x01\x02" + b"\x01\x00"
    assert list(aiocoap.Message.decode(data).opt.if_match) == tags
    assert Message.decode(data).opts(codec.IF_MATCH) == tags


def test_string_options():
    proxy = "coap://example.net/" + "p" * 300  # 319 bytes: 14-form length
    opts = [
        (codec.URI_PATH, "sensors"),
        (codec.URI_PATH, "température"),
        (codec.URI_PATH, ""),
        (codec.URI_QUERY, "a=1"),
        (codec.URI_QUERY, "b"),
        (codec.LOCATION_PATH, "loc"),
        (codec.PROXY_URI, proxy),
    ]
    data = check_both_ways(0, codec.POST, 13, b"\x42", opts, b"body")
    m = aiocoap.Message.decode(data)
    assert m.opt.uri_path == ("sensors", "température", "")
    assert m.opt.uri_query == ("a=1", "b")
    assert m.opt.location_path == ("loc",)
    assert m.opt.proxy_uri == proxy
    ours = Message.decode(data)
    assert ours.opts(codec.URI_PATH) == [b"sensors", "température".encode(), b""]
    assert ours.opt(codec.PROXY_URI) == proxy.encode()
    # "température" is 12 UTF-8 bytes: the length counts bytes, not characters
    assert data[5 + 4 + 8] == 0 << 4 | 12  # after Location-Path "loc" and "sensors"


def test_repeated_options_keep_order_unsorted_input():
    opts = [
        (codec.URI_QUERY, "q1"),
        (codec.URI_PATH, "p1"),
        (codec.CONTENT_FORMAT, codec.JSON),
        (codec.URI_PATH, "p2"),
        (codec.URI_QUERY, "q2"),
        (codec.URI_HOST, "h"),
        (codec.URI_PATH, "p3"),
    ]
    data = check_both_ways(0, codec.POST, 14, b"", opts, b"{}")
    assert [n for n, _ in Message.decode(data).options] == [3, 11, 11, 11, 12, 15, 15]
    assert Message.decode(data).opts(codec.URI_PATH) == [b"p1", b"p2", b"p3"]
    assert Message.decode(data).opts(codec.URI_QUERY) == [b"q1", b"q2"]
    assert aiocoap.Message.decode(data).opt.uri_path == ("p1", "p2", "p3")


def test_unsorted_input_is_sorted():
    opts = [(60, 5), (1000, b"x"), (4, b"e"), (35, "u"), (0, b""), (23, 0x16)]
    data = check_both_ways(2, codec.CONTENT, 15, b"", opts)
    sorted_data = ours_encode(2, codec.CONTENT, 15, b"", sorted(opts, key=lambda o: o[0]))
    assert data == sorted_data
    assert [n for n, _ in ours_decode(data)[4]] == [0, 4, 23, 35, 60, 1000]


def test_option_value_types_are_equivalent():
    # int, str and bytes values give the same wire bytes
    a = ours_encode(0, codec.GET, 1, b"", [(12, 50), (11, "x")])
    b = ours_encode(0, codec.GET, 1, b"", [(12, b"\x32"), (11, b"x")])
    assert a == b == bytes.fromhex("40010001" + "b178" + "1132")


# --- payload ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\xff", b"x" * 1024])
def test_payload_marker(payload):
    opts = [(codec.CONTENT_FORMAT, codec.OCTETS)]
    data = check_both_ways(2, codec.CONTENT, 16, b"\x07", opts, payload)
    head = bytes.fromhex("6145001007" + "c12a")
    assert data[: len(head)] == head
    if payload:
        assert data[len(head)] == 0xFF
        assert data[len(head) + 1 :] == payload
    else:
        assert len(data) == len(head)  # no marker without payload
    assert codec.View().parse(data, len(data)).payload() == payload


def test_payload_without_options():
    data = check_both_ways(1, codec.POST, 17, b"", [], b"\xffhello")
    assert data == bytes.fromhex("50020011ffff") + b"hello"


# --- aiocoap writes with its own high-level API, we read -------------------------------------


def test_aiocoap_high_level_request_decodes():
    m = aiocoap.Message(code=aiocoap.GET)
    m.mtype, m.mid, m.token = Type.CON, 0xBEEF, b"\x01\x02\x03"
    m.opt.uri_host = "board.local"
    m.opt.uri_port = 5683
    m.opt.uri_path = ("a", "bb", "ccc")
    m.opt.uri_query = ("x=1",)
    m.opt.accept = 50
    m.opt.observe = 0
    m.opt.block2 = (3, False, 6)
    data = m.encode()
    got = Message.decode(data)
    assert (got.type, got.code, got.mid, got.token) == (0, codec.GET, 0xBEEF, b"\x01\x02\x03")
    assert got.options == [
        (3, b"board.local"),
        (6, b""),
        (7, b"\x16\x33"),
        (11, b"a"),
        (11, b"bb"),
        (11, b"ccc"),
        (15, b"x=1"),
        (17, b"\x32"),
        (23, b"\x36"),
    ]
    assert got.uint(codec.URI_PORT) == 5683
    assert got.payload == b""
    again = ours_encode(got.type, got.code, got.mid, got.token, got.options, got.payload)
    assert again == data


def test_aiocoap_high_level_response_decodes():
    m = aiocoap.Message(code=aiocoap.CONTENT, payload=b"x" * 300)
    m.mtype, m.mid, m.token = Type.ACK, 1, b""
    m.opt.content_format = 60
    m.opt.max_age = 0
    m.opt.etag = b"\x00\x11"
    m.opt.size2 = 70000
    m.opt.location_path = ("new", "1")
    data = m.encode()
    view = codec.View().parse(data, len(data))
    assert (view.type, view.code, view.mid, view.token()) == (2, 69, 1, b"")
    assert view.option(codec.ETAG) == b"\x00\x11"
    assert view.uint(codec.CONTENT_FORMAT) == 60
    assert view.uint(codec.MAX_AGE) == 0
    assert view.option(codec.MAX_AGE) == b""
    assert view.uint(codec.SIZE2) == 70000
    assert Message.decode(data).opts(codec.LOCATION_PATH) == [b"new", b"1"]
    assert view.payload() == b"x" * 300


def test_raw_helper_matches_codec_uint():
    # guard the helper the vectors rely on
    for v in (0, 1, 255, 256, 2**32 - 1):
        assert raw(v) == (v.to_bytes(codec.uint_len(v), "big") if v else b"")


@pytest.mark.parametrize(
    "options,payload",
    [
        ([], b""),
        ([(codec.URI_PATH, "é" * 100), (codec.URI_PATH, "\U0001f600" * 50)], b""),
        ([(codec.SIZE2, 2**64 - 1), (codec.OBSERVE, 0), (codec.ETAG, b"\x01" * 8)], b"x"),
        ([(codec.ETAG, bytes(MAX_EXT))], b"y" * 2000),
        ([(n, b"") for n in range(0, 400, 7)], b"z"),
    ],
    ids=["bare", "multibyte-str", "ints", "max-length", "many"],
)
def test_message_encode_sizes_itself(options, payload):
    # Message.encode() picks its own buffer: it must fit any valid message
    m = Message(codec.NON, codec.CONTENT, 0x4242, b"\x01\x02", options, payload)
    data = m.encode()
    assert data == ours_encode(codec.NON, codec.CONTENT, 0x4242, b"\x01\x02", options, payload)
    back = Message.decode(data)
    assert back.options == expected_options(options)
    assert back.payload == payload


def test_token_is_compares_every_byte():
    # the client matches responses to requests by token: one differing byte is another request
    data = ours_encode(codec.ACK, codec.CONTENT, 7, b"\x01\x02\x03\x04")
    view = codec.View().parse(data, len(data))
    assert view.token_is(b"\x01\x02\x03\x04") and view.token_is(bytearray(b"\x01\x02\x03\x04"))
    for other in (b"\x01\x02\x03\x05", b"\x09\x02\x03\x04", b"\x01\x02\x03", b"", b"\x01" * 5):
        assert not view.token_is(other), other
