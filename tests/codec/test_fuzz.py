# Property tests (hypothesis): decoding never fails except with MessageError, round trips, and
# agreement with aiocoap. COAP_FUZZ_EXAMPLES=N raises every example count for long runs.
import pytest
from codec_support import (
    MAX_EXT,
    UnparsableMessage,
    aio_decode,
    aio_encode,
    codec,
    expected_options,
    fuzz_examples,
    is_string_format,
    is_uint_format,
    normalized,
    ours_decode,
    ours_encode,
    uint_bytes,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from coap.message import Message


def fuzz(default):
    return settings(
        max_examples=fuzz_examples(default),
        deadline=None,
        database=None,  # no example database in the checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- strategies ------------------------------------------------------------------------------


@st.composite
def option_value(draw, num):
    # values aiocoap can hold without reinterpreting them, so raw bytes compare exactly
    if is_string_format(num):
        return draw(st.text(max_size=100)).encode()[:300]
    if is_uint_format(num):
        return uint_bytes(draw(st.integers(0, 2**64 - 1)))
    return draw(st.binary(max_size=300))


@st.composite
def sorted_options(draw, max_number=70000):
    nums = sorted(draw(st.lists(st.integers(0, max_number), max_size=8)))
    # bias towards the interesting small and repeated numbers
    nums += draw(st.lists(st.sampled_from([1, 4, 6, 11, 12, 15, 23, 27, 60]), max_size=4))
    nums.sort()
    return [(n, draw(option_value(n))) for n in nums]


def has_big_delta(options):
    prev = 0
    for num, _ in options:
        if num - prev > MAX_EXT:
            return True
        prev = num
    return False


@st.composite
def messages(draw, options=None):
    code = draw(st.integers(1, 255))  # 0 is the Empty message: no token/options/payload
    return (
        draw(st.integers(0, 3)),
        code,
        draw(st.integers(0, 0xFFFF)),
        draw(st.binary(max_size=8)),
        draw(options if options is not None else sorted_options()),
        draw(st.binary(max_size=300)),
    )


@st.composite
def valid_encoding(draw):
    if draw(st.integers(0, 9)) == 0:
        return ours_encode(draw(st.integers(0, 3)), 0, draw(st.integers(0, 0xFFFF)))
    msg = draw(messages(sorted_options(max_number=2000)))
    return ours_encode(*msg)


@st.composite
def mutated(draw):
    data = bytearray(draw(valid_encoding()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and data:  # flip bits of one byte
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif kind == 1 and data:  # overwrite a byte with a nibble-interesting value
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.sampled_from([0x00, 0x0D, 0x0E, 0x0F, 0xD0, 0xE0, 0xF0, 0xFF]))
        elif kind == 2:  # truncate
            del data[draw(st.integers(0, len(data))) :]
        else:  # append junk
            data += draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


# version-1 header first, so the random bytes reach the token and option parser
v1_bytes = st.builds(
    lambda b0, rest: bytes([b0]) + rest, st.integers(0x40, 0x7F), st.binary(max_size=299)
)
any_input = st.one_of(st.binary(max_size=300), v1_bytes, mutated())


def decode_all(data):
    """Every accessor of a parsed View, or MessageError; any other exception fails the test."""
    buf = bytearray(data) + b"\xa5" * 8  # a reused receive buffer longer than the datagram
    try:
        v = codec.View().parse(buf, len(data))
    except codec.MessageError:
        with pytest.raises(codec.MessageError):
            Message.decode(data)
        return None
    opts = v.options()
    fields = (v.type, v.code, v.mid, v.token(), opts, v.payload())
    first = {}
    for num, val in opts:
        first.setdefault(num, val)
    for num, val in first.items():  # option()/uint() find the first of repeated options
        assert v.option(num) == val
        assert v.uint(num) == int.from_bytes(val, "big")
    assert v.token_is(v.token())
    m = Message.decode(data)
    assert (m.type, m.code, m.mid, m.token, m.options, m.payload) == fields
    return fields


# --- (a) decoding arbitrary bytes ------------------------------------------------------------


@fuzz(600)
@given(any_input)
def test_decode_never_raises_other_errors(data):
    fields = decode_all(data)
    if fields is not None:
        # what we accept re-encodes to the same bytes, except non-minimal forms cannot occur:
        # RFC 7252 option encodings are unique, so the round trip is exact
        assert ours_encode(*fields) == data


@fuzz(300)
@given(mutated())
def test_decode_mutated_messages(data):
    decode_all(data)


# --- (b) round trip --------------------------------------------------------------------------


@fuzz(300)
@given(messages())
def test_round_trip(msg):
    mtype, code, mid, token, options, payload = msg
    if has_big_delta(options):
        with pytest.raises(codec.MessageError):
            ours_encode(*msg)
        return
    data = ours_encode(*msg)
    want = (mtype, code, mid, token, expected_options(options), payload)
    assert ours_decode(data) == want
    assert aio_decode(data) == want
    assert Message(*msg).encode() == data


@fuzz(200)
@given(messages(sorted_options(max_number=3000)), st.randoms(use_true_random=False))
def test_round_trip_unsorted_input(msg, rnd):
    mtype, code, mid, token, options, payload = msg
    shuffled = list(options)
    rnd.shuffle(shuffled)
    data = ours_encode(mtype, code, mid, token, shuffled, payload)
    # stable sort: repeated options keep the order they were given in
    want = (mtype, code, mid, token, expected_options(shuffled), payload)
    assert ours_decode(data) == want
    assert aio_decode(data) == want


@fuzz(200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([4, 6, 11, 12, 14, 23, 60, 1000]),
            st.one_of(st.integers(0, 2**40), st.text(max_size=20), st.binary(max_size=20)),
        ),
        max_size=10,
    )
)
def test_value_kinds_round_trip(options):
    # int, str and bytes values: ints come back as minimal big-endian bytes
    data = ours_encode(0, codec.POST, 1, b"", options, b"")
    assert ours_decode(data)[4] == expected_options(options)
    m = Message.decode(data)
    for num, val in options:
        if isinstance(val, int):
            assert val in [int.from_bytes(v, "big") for v in m.opts(num)]


# --- (c) agreement with aiocoap --------------------------------------------------------------


def aio_try(data):
    try:
        return "ok", normalized(aio_decode(data))
    except UnparsableMessage:
        return "reject", None
    except UnicodeDecodeError:
        # aiocoap decodes string options eagerly; invalid UTF-8 is not a message format error
        return "string", None


def aio_lenient(data, theirs):
    """The RFC 7252 format errors aiocoap lets through (it accepts, we must reject)."""
    tkl = data[0] & 15
    return (
        tkl > 8  # §3: lengths 9-15 are reserved, MUST be processed as a format error
        or 4 + tkl > len(data)  # token past the end: aiocoap keeps a short token
        or (data[1] == 0 and len(data) != 4)  # §4.1: Empty message with content
        or (data[-1] == 0xFF and theirs[5] == b"")  # §3: marker followed by no payload
    )


@fuzz(600)
@given(any_input)
def test_agrees_with_aiocoap(data):
    ours = decode_all(data)
    verdict, theirs = aio_try(data)
    if ours is not None:
        assert verdict in ("ok", "string"), "aiocoap rejects what we accept"
        if verdict == "ok":
            assert normalized(ours) == theirs
    elif verdict == "ok":
        assert aio_lenient(data, theirs), "we reject what aiocoap accepts"


@pytest.mark.parametrize(
    "hexdata",
    ["49010001" + "00" * 9, "41010001", "41000001aa", "40010001ff"],
    ids=["tkl9", "token-past-end", "empty-with-token", "marker-no-payload"],
)
def test_aiocoap_lenient_cases(hexdata):
    # documents where aiocoap accepts a format error that RFC 7252 (and we) reject
    data = bytes.fromhex(hexdata)
    with pytest.raises(codec.MessageError):
        Message.decode(data)
    verdict, theirs = aio_try(data)
    assert verdict == "ok"
    assert aio_lenient(data, theirs)


def test_invalid_utf8_string_option():
    # we keep raw bytes; aiocoap raises UnicodeDecodeError (not UnparsableMessage)
    data = bytes.fromhex("40010001b2c328")
    assert Message.decode(data).options == [(11, b"\xc3\x28")]
    assert aio_try(data)[0] == "string"


@fuzz(300)
@given(messages(sorted_options(max_number=60000)))
def test_aiocoap_encoding_decodes(msg):
    mtype, code, mid, token, options, payload = msg
    assume(not has_big_delta(options))
    data = aio_encode(*msg)
    assert ours_decode(data) == (mtype, code, mid, token, options, payload)
    assert data == ours_encode(*msg)
