# Malformed input: every case raises codec.MessageError (and nothing else), both directions.
import signal
from contextlib import contextmanager

import pytest
from codec_support import MAX_EXT, codec, ours_encode, rfc_message

from coap.message import Message

MessageError = codec.MessageError

# (hex, why): each must be rejected by View.parse and Message.decode
MALFORMED = [
    ("", "empty datagram"),
    ("40", "1 byte"),
    ("4001", "2 bytes"),
    ("400100", "3 bytes"),
    ("00010001", "version 0"),
    ("80010001", "version 2"),
    ("c0010001", "version 3"),
    ("c0000000", "version 3 empty"),
    ("49010001" + "00" * 9, "TKL 9 with 9 token bytes"),
    ("4a010001" + "00" * 10, "TKL 10"),
    ("4f010001" + "00" * 15, "TKL 15"),
    ("4f010001", "TKL 15, nothing after"),
    ("41010001", "token 1 byte, none present"),
    ("48010001" + "00" * 7, "token 8 bytes, 7 present"),
    ("44450001aabbcc", "token 4 bytes, 3 present"),
    ("40000001ff", "empty message with a payload marker"),
    ("41000001aa", "empty message with a token"),
    ("400000010b", "empty message with an option byte"),
    ("70000001ff41", "empty RST with payload"),
    ("6000000100", "empty ACK with a trailing zero byte"),
    ("40010001ff", "payload marker, no payload"),
    ("41010001aaff", "payload marker after token, no payload"),
    ("40010001b161ff", "payload marker after an option, no payload"),
    ("40010001f0", "delta nibble 15, length 0"),
    ("40010001f1aa", "delta nibble 15, length 1"),
    ("40010001fe0000", "delta nibble 15, length 14"),
    ("40010001b161f3aabbcc", "delta nibble 15 in the second option"),
    ("400100010f", "length nibble 15, delta 0"),
    ("40010001bf", "length nibble 15, delta 11"),
    ("40010001df00", "length nibble 15 after a 13-form delta"),
    ("40010001d0", "13-form delta, extension byte missing"),
    ("40010001e0", "14-form delta, both extension bytes missing"),
    ("40010001e001", "14-form delta, one extension byte missing"),
    ("400100010d", "13-form length, extension byte missing"),
    ("400100010e", "14-form length, both extension bytes missing"),
    ("400100010e00", "14-form length, one extension byte missing"),
    ("40010001dd00", "13-form delta and length, length byte missing"),
    ("40010001ee0000", "14-form delta and length, length bytes missing"),
    ("40010001ee000000", "14-form delta and length, one length byte missing"),
    ("4001000101", "value of 1 byte missing"),
    ("40010001b3616263" + "34", "second option value past the end"),
    ("4001000104aabbcc", "value 4 bytes, 3 present"),
    ("400100010d00" + "00" * 12, "13-form length 13, 12 present"),
    ("400100010e0000" + "00" * 268, "14-form length 269, 268 present"),
    ("400100010effff" + "00" * 100, "14-form length 65804, 100 present"),
]
# 0xff as an option value or as the first payload byte is not a (bad) payload marker
VALID_LOOKALIKES = [
    ("40010001b1ff", [(11, b"\xff")], b""),
    ("40010001b1ffff41", [(11, b"\xff")], b"A"),
    ("40010001b0ff41", [(11, b"")], b"A"),
    ("40010001ffff", [], b"\xff"),
]


@pytest.mark.parametrize("hexdata,why", MALFORMED, ids=[w for _, w in MALFORMED])
def test_decode_rejects(hexdata, why):
    data = bytes.fromhex(hexdata)
    with pytest.raises(MessageError):
        codec.View().parse(data, len(data))
    with pytest.raises(MessageError):
        Message.decode(data)
    # the same bytes at the start of a larger (reused) receive buffer, parsed with n
    buf = bytearray(data + b"\x00" * 64)
    with pytest.raises(MessageError):
        codec.View().parse(buf, len(data))


@pytest.mark.parametrize("hexdata,options,payload", VALID_LOOKALIKES)
def test_decode_accepts_lookalikes(hexdata, options, payload):
    m = Message.decode(bytes.fromhex(hexdata))
    assert (m.options, m.payload) == (options, payload)


def test_decode_stops_at_n():
    # bytes after n never count: a complete message followed by garbage in the buffer
    data = bytes.fromhex("41010001aab161")
    buf = bytearray(data + b"\xff\x00\x0f")
    v = codec.View().parse(buf, len(data))
    assert (v.token(), v.options(), v.payload()) == (b"\xaa", [(11, b"a")], b"")
    # and a truncation inside the buffer is caught even though the bytes exist beyond n
    with pytest.raises(MessageError):
        codec.View().parse(buf, len(data) - 1)


def test_view_reusable_after_error():
    v = codec.View()
    bad = bytes.fromhex("40010001f0")
    good = bytes.fromhex("60450002c13cff6f6b")
    with pytest.raises(MessageError):
        v.parse(bad, len(bad))
    v.parse(good, len(good))
    assert (v.type, v.code, v.mid, v.uint(12), v.payload()) == (2, 69, 2, 60, b"ok")


def test_message_error_is_value_error():
    assert issubclass(MessageError, ValueError)


# --- encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("tkl", [9, 10, 15, 16, 100])
def test_encode_token_too_long(tkl):
    buf = bytearray(256)
    with pytest.raises(MessageError):
        codec.encode(buf, 0, codec.GET, 1, bytes(tkl))
    with pytest.raises(MessageError):
        Message(0, codec.GET, 1, bytes(tkl)).encode()


SIZED = [
    # (token, options, payload) where the space runs out in the header/token, options, payload
    (b"", [], b""),
    (b"\x01\x02\x03\x04\x05\x06\x07\x08", [], b""),
    (b"\x01", [(11, "path"), (12, 50), (1000, b"x" * 300)], b""),
    (b"tok", [(4, b"")], b"payload"),
    (b"", [], b"p" * 1024),
    (b"ab", [(3, "h"), (11, "a"), (11, "b"), (60, 2**32 - 1)], b"\xff" * 20),
]


@pytest.mark.parametrize("token,options,payload", SIZED)
def test_encode_exceeding_buffer(token, options, payload):
    # every buffer shorter than the message fails with MessageError; exactly enough succeeds
    full = ours_encode(0, codec.POST, 0x1234, token, options, payload)
    for size in range(len(full)):
        buf = bytearray(b"\xee" * size)
        with pytest.raises(MessageError):
            codec.encode(buf, 0, codec.POST, 0x1234, token, options, payload)
        assert len(buf) == size  # the buffer never grows or shrinks
    buf = bytearray(len(full))
    assert codec.encode(buf, 0, codec.POST, 0x1234, token, options, payload) == len(full)
    assert bytes(buf) == full
    assert Message(0, codec.POST, 0x1234, token, options, payload).encode() == full


@pytest.mark.parametrize(
    "size,where",
    [(3, "header"), (5, "token"), (8, "first option"), (11, "second option"), (13, "payload")],
)
def test_encode_exceeding_buffer_regions(size, where):
    # 4 header + 2 token + (b3 'abc') 4 + (11 'de') 3 + ff + 'xyz' = 17
    args = (0, codec.GET, 7, b"tt", [(11, "de"), (3, "abc")], b"xyz")
    assert len(ours_encode(*args)) == 17
    buf = bytearray(size)
    with pytest.raises(MessageError):
        codec.encode(buf, *args)
    assert len(buf) == size
    with pytest.raises(MessageError):
        codec.encode(bytearray(16), *args)  # one byte short of the payload
    assert codec.encode(bytearray(17), *args) == 17


def test_encode_fits_exactly_and_reports_length_in_larger_buffer():
    buf = bytearray(b"\xee" * 40)
    n = codec.encode(buf, 1, codec.GET, 9, b"", [(11, "x")], b"y")
    assert n == 8
    assert bytes(buf[:n]) == rfc_message(1, codec.GET, 9, b"", [(11, b"x")], b"y")
    assert bytes(buf[n:]) == b"\xee" * 32  # nothing written past the message


@pytest.mark.parametrize(
    "options",
    [
        [(MAX_EXT + 1, b"")],
        [(1, b""), (MAX_EXT + 2, b"")],
        [(5, b""), (10, b""), (10 + MAX_EXT + 1, b"")],
        [(100000, b"")],
    ],
    ids=["first delta 65805", "delta 65805", "third delta 65805", "option 100000 alone"],
)
def test_encode_delta_too_large(options):
    with pytest.raises(MessageError):
        codec.encode(bytearray(1024), 0, codec.GET, 1, b"", options)


def test_encode_delta_at_limit():
    data = ours_encode(0, codec.GET, 1, b"", [(1, b""), (1 + MAX_EXT, b"")])
    assert data == bytes.fromhex("4001000110e0ffff")


def test_encode_length_too_large():
    with pytest.raises(MessageError):
        codec.encode(bytearray(70000), 0, codec.PUT, 1, b"", [(4, bytes(MAX_EXT + 1))])
    data = ours_encode(0, codec.PUT, 1, b"", [(4, bytes(MAX_EXT))], size=MAX_EXT + 8)
    assert data[4:7] == b"\x4e\xff\xff"
    assert len(data) == 7 + MAX_EXT


@contextmanager
def time_limit(seconds):
    # turn a hang into an exception (SIGALRM, main thread, POSIX)
    def alarm(signum, frame):
        raise TimeoutError("encode did not return")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_encode_negative_uint_option():
    with time_limit(0.5):
        with pytest.raises(MessageError):
            codec.encode(bytearray(64), 0, codec.GET, 1, b"", [(codec.OBSERVE, -1)])


@pytest.mark.parametrize("mtype", [4, 8])
def test_encode_bad_type(mtype):
    with pytest.raises(MessageError):
        codec.encode(bytearray(64), mtype, codec.GET, 1)


@pytest.mark.parametrize(
    "code,options",
    [(256, []), (-1, []), (codec.GET, [(-1, b"")])],
    ids=["code256", "code-1", "opt-1"],
)
def test_encode_out_of_range_raises_message_error(code, options):
    with pytest.raises(MessageError):
        codec.encode(bytearray(64), 0, code, 1, b"", options)


@pytest.mark.parametrize(
    "token,options,payload",
    [(b"t", [], b""), (b"", [(11, "a")], b""), (b"", [], b"x")],
    ids=["token", "option", "payload"],
)
def test_encode_empty_message_with_content(token, options, payload):
    with pytest.raises(MessageError):
        codec.encode(bytearray(64), codec.ACK, codec.EMPTY, 1, token, options, payload)
