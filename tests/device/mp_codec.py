# The codec on the unix port: the same wire bytes as under CPython, malformed input raises
# MessageError only, and encoding allocates nothing (the hot path of every request).
import gc

from coap.codec import (
    ACK,
    BLOCK2,
    CON,
    CONTENT,
    GET,
    OBSERVE,
    URI_PATH,
    URI_QUERY,
    MessageError,
    View,
    encode,
)
from coap.message import Message

VECTORS = [
    # (hex, type, code, mid, token, options, payload)
    ("40011234", CON, GET, 0x1234, b"", [], b""),
    ("6000abcd", ACK, 0, 0xABCD, b"", [], b""),
    (
        "4201000a0102b474696d65",
        CON,
        GET,
        10,
        b"\x01\x02",
        [(URI_PATH, b"time")],
        b"",
    ),
    ("62450001010260ff6869", ACK, CONTENT, 1, b"\x01\x02", [(OBSERVE, 0)], b"hi"),
    ("40010001dd0d03" + "61" * 16, CON, GET, 1, b"", [(26, b"a" * 16)], b""),
    ("40010001d10a06", CON, GET, 1, b"", [(BLOCK2, 6)], b""),
    ("40010001e1fef2ff", CON, GET, 1, b"", [(65535, b"\xff")], b""),
]


def test_vectors_encode_and_decode():
    for hexs, t, c, mid, tok, opts, pl in VECTORS:
        want = bytes.fromhex(hexs)
        got = Message(t, c, mid, tok, opts, pl).encode()
        assert got == want, (hexs, got)
        m = Message.decode(want)
        assert (m.type, m.code, m.mid, m.token, m.payload) == (t, c, mid, tok, pl)
        assert [n for n, _ in m.options] == [n for n, _ in opts]


def test_repeated_and_unsorted_options_keep_order():
    opts = [(URI_QUERY, "a=1"), (URI_PATH, "x"), (URI_QUERY, "b=2"), (URI_PATH, "y")]
    m = Message.decode(Message(CON, GET, 1, b"", opts).encode())
    assert m.options == [
        (URI_PATH, b"x"),
        (URI_PATH, b"y"),
        (URI_QUERY, b"a=1"),
        (URI_QUERY, b"b=2"),
    ]


def test_uint_options_minimal():
    for v, n in ((0, 0), (1, 1), (255, 1), (256, 2), (65535, 2), (65536, 3)):
        m = Message.decode(Message(CON, GET, 1, b"", [(OBSERVE, v)]).encode())
        assert len(m.opt(OBSERVE)) == n and m.uint(OBSERVE) == v


def test_malformed_raise_message_error_only():
    bad = [
        b"",
        b"\x40\x01\x00",
        b"\x80\x01\x00\x01",  # version 2
        b"\x49\x01\x00\x01" + b"\x00" * 9,  # TKL 9
        b"\x44\x01\x00\x01\x01",  # token past the end
        b"\x40\x00\x00\x01\xff",  # empty message with data
        b"\x40\x01\x00\x01\xff",  # marker, no payload
        b"\x40\x01\x00\x01\xf1\x00",  # delta 15
        b"\x40\x01\x00\x01\x1f",  # length 15
        b"\x40\x01\x00\x01\xd1",  # truncated extended delta
        b"\x40\x01\x00\x01\x15",  # value past the end
    ]
    for data in bad:
        try:
            View().parse(data, len(data))
        except MessageError:
            continue
        raise AssertionError("accepted %r" % data)


def test_too_large_raises_never_truncates():
    buf = bytearray(20)
    for args in (
        (b"", [], b"x" * 16),
        (b"", [(URI_PATH, "y" * 20)], b""),
        (b"123456789", [], b""),
    ):
        try:
            encode(buf, CON, GET, 1, *args)
        except MessageError:
            continue
        raise AssertionError("encoded %r" % (args,))


def test_encode_and_view_allocate_nothing():
    buf = bytearray(128)
    opts = [(OBSERVE, 0), (URI_PATH, b"api"), (URI_PATH, b"v1"), (URI_PATH, b"telemetry")]
    v = View()
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    n = encode(buf, CON, GET, 7, b"\x01\x02\x03\x04", opts, b'{"a":1}')
    v.parse(buf, n)
    seq = v.uint(OBSERVE)
    same = v.token_is(b"\x01\x02\x03\x04")
    a1 = gc.mem_alloc()
    gc.enable()
    assert seq == 0 and same
    assert a1 - a0 == 0, a1 - a0


def test_the_packages_hold_no_code_and_give_their_modules():
    # naming a package costs a board's heap nothing: no names load through it
    import protobuf

    import coap
    import thingsboard
    from coap import codec  # a submodule, as Python imports it

    assert codec.GET == 1
    for pkg in (coap, protobuf, thingsboard):
        code = [k for k, v in pkg.__dict__.items() if k[:2] != "__" and type(v) is not type(coap)]
        assert code == [], (pkg, code)  # submodules an import set, nothing else
    try:
        coap.Client  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("coap.Client resolved")
