# Server input fuzzed into the device stack on the MicroPython unix port (mp_fuzz.py): RPC and
# attribute notifications through the coap client, thingsboard.Device and the firmware's
# handlers; raw datagrams; provisioning replies; Block2 replies; JSON replies. Whatever comes,
# nothing escapes into the safety nets, replies are well-formed, only allowlisted output pins
# move, and the telemetry interval stays one the scheduler can use.
import json
import os
import string

import pytest
from fuzzenv import MpFuzz, fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from coap import codec
from coap.message import Message

BATCH = 50
# a notification's payload up to this size always fits the client's 1152-byte datagram buffer
# (4 header + 4 token + up to 4 Observe + 1 marker); a longer one may not, depending on the
# Observe number's length, and is then dropped whole: the models skip those
FITS = 1152 - 13
ALLOWED = {26: "pump", 27: "fan"}  # the harness's GPIO outputs (35 "door" is an input)
NAMES = {"pump": 26, "fan": 27, "door": 35}
METHODS = ["setGpio", "getGpio", "getGpioStatus", "setGpioStatus", "readNow", "reboot"]
ERRORS = {"ResponseError", "BadRequest", "Unauthorized", "NotFound", "ServerError"}


@pytest.fixture(scope="module")
def mp(tmp_path_factory):
    m = MpFuzz(tmp_path_factory.mktemp("mpfuzz"))
    yield m
    m.close()


def batches(inp):
    return st.lists(inp, min_size=1, max_size=BATCH)


# --- JSON that servers could send ----------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=8,
)
pins = (
    st.integers(-3, 45)
    | st.sampled_from(list(NAMES) + ["26", "27", "35", "5", "026", "²", "٣", "pump "])
    | values
)
levels = st.sampled_from([0, 1, True, False, "0", "1", "on", "off", "true", "false", 2]) | values


@st.composite
def gpio_params(draw):
    p = {}
    if draw(st.booleans()) or draw(st.booleans()):
        p["pin"] = draw(pins)
    key = draw(st.sampled_from(["value", "enabled", "other"]))
    if draw(st.booleans()) or draw(st.booleans()):
        p[key] = draw(levels)
    return p


@st.composite
def rpc_objects(draw):
    rpc = {}
    if draw(st.integers(0, 9)):
        rpc["id"] = draw(st.integers(0, 2**31) | st.integers(-(2**80), 2**80) | values)
    if draw(st.integers(0, 9)):
        rpc["method"] = draw(st.sampled_from(METHODS) | values)
    params = draw(gpio_params() | values)
    if draw(st.integers(0, 3)) == 0:
        params = json.dumps(params)  # ThingsBoard may pass params as a JSON string
    if draw(st.integers(0, 9)):
        rpc["params"] = params
    return rpc


@st.composite
def attr_objects(draw):
    a = draw(st.dictionaries(st.text(max_size=6), values, max_size=3))
    if draw(st.integers(0, 4)):
        v = st.integers(-5, 100000) | st.integers(-(2**80), 2**80) | values
        a["telemetry_interval"] = draw(v)
    if draw(st.integers(0, 5)) == 0:
        a["deleted"] = draw(st.lists(st.sampled_from(["telemetry_interval", "x"]) | values))
    return a


# raw bytes around JSON: mutated encodings, literals JSON parsers differ on, junk
literals = st.sampled_from(
    [
        b'{"id":1e400,"method":"getGpioStatus"}',
        b'{"id":-1e400}',
        b'{"id":1,"method":"setGpio","params":{"pin":26,"value":1},}',
        b'{"telemetry_interval":1e400}',
        b'{"telemetry_interval":NaN}',
        b'{"telemetry_interval":99999999999999999999999999999}',
        b'{"id":"7","method":"setGpio","params":"{\\"pin\\":26,\\"value\\":1}"}',
        b'{"id":2,"method":"setGpio","params":"{broken"}',
        b'{"id":3,"method":"\xff\xfe","params":{}}',
        b'{"id":4,"method":"getGpio","params":{"pin":"\xc3\x28"}}',
        b"[" * 200,
        b"{" * 100,
        b"null",
        b"[]",
        b'"str"',
        b"12",
        b"",
    ]
)


@st.composite
def mutate(draw, base):
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.sampled_from(b'{}[]",:0123456789-.eE\\ \x00\xff'))
        elif kind == 1 and data:
            del data[draw(st.integers(0, len(data))) :]
        elif kind == 2:
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
    return bytes(data)


def encoded(objects):
    return objects.map(lambda o: json.dumps(o).encode())


def payloads(objects):
    enc = encoded(objects)
    return st.one_of(enc, enc, mutate(enc), literals, mutate(literals), st.binary(max_size=64))


def text_of(b):
    return b.hex()


# --- models of what the firmware must do ---------------------------------------------------


def parse(payload):
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def pin_number(pin):
    # firmware/gpio.py on MicroPython: str.isdigit() is ASCII only there
    if isinstance(pin, int) and not isinstance(pin, bool):
        return pin
    if isinstance(pin, str):
        if pin and all(c in string.digits for c in pin):
            return int(pin)
        return NAMES.get(pin)
    return None


def level(v):
    if v in (True, 1, "1", "true", "on"):
        return 1
    if v in (False, 0, "0", "false", "off"):
        return 0
    return None


def check_rpc(payload, r):
    rpc = parse(payload)
    replies = [(path, json.loads(body)) for path, body in r["r"] if path != "attributes"]
    assert len(replies) <= 1, replies
    for _, body in replies:
        assert isinstance(body, dict) and body, body
    assert all(pin in ALLOWED for pin, _ in r["p"]), r["p"]
    if not isinstance(rpc, dict) or type(rpc.get("id")) is not int:
        return
    # a well-formed notification with an integer id gets exactly one reply, to that id
    assert len(replies) == 1, (rpc, r)
    path, body = replies[0]
    assert path == str(rpc["id"])
    method, params = rpc.get("method"), rpc.get("params")
    if isinstance(params, str) and params[:1] in ("{", "["):
        params = parse(params)
    if method not in ("setGpio", "setGpioStatus"):
        assert r["p"] == []
    if method not in METHODS:
        assert "error" in body, body
        return
    if method in ("setGpio", "setGpioStatus", "getGpio"):
        n = pin_number(params.get("pin")) if isinstance(params, dict) else None
        if n not in NAMES.values():
            assert "error" in body and r["p"] == [], (rpc, r)
            return
        want = level(params.get("value" if method == "setGpio" else "enabled"))
        if method == "getGpio" or n == 35:
            assert r["p"] == []
            if method != "getGpio":
                assert "error" in body
            return
        if want is None:
            assert "error" in body and r["p"] == []
        else:
            assert r["p"] == [(n, want)] or r["p"] == [[n, want]]
            if method == "setGpio":
                assert body == {"pin": n, "value": want}


def check_attributes(payload, r, before):
    assert 500 <= r["iv"] <= 86400 * 1000
    assert r["p"] == []
    a = parse(payload)
    if not isinstance(a, dict):
        return
    if "telemetry_interval" in a:
        v = a["telemetry_interval"]
        # seconds, fractions down to 0.5 s (NaN and infinity compare false)
        ok = type(v) in (int, float) and 0.5 <= v <= 86400
        if v is None:  # null reads as deleted: back to the config's
            assert r["iv"] == 60000
        elif ok and type(v) is float:  # MicroPython reads the decimal to within a last bit
            assert abs(r["iv"] - v * 1000) <= 1
        else:
            assert r["iv"] == (v * 1000 if ok else before)
    elif isinstance(a.get("deleted"), list) and "telemetry_interval" in a["deleted"]:
        assert r["iv"] == 60000  # back to the config's


# --- the properties ------------------------------------------------------------------------


def no_escapes(results):
    for r in results:
        assert r["e"] == [], r


# @example: inputs that once broke the device (regressions)
@fuzz(40)
@given(batches(payloads(rpc_objects())))
@example([b'{"id": 1e400, "method": "getGpioStatus"}', b'{"id": 5, "method": "setGpio"}'])
def test_rpc_notifications(mp, items):
    out = mp.run("notify", [["rpc", text_of(p)] for p in items])
    no_escapes(out)
    for p, r in zip(items, out):
        if len(p) <= FITS:
            check_rpc(p, r)


@fuzz(25)
@given(batches(payloads(attr_objects())))
@example([b"null", b"[1]", b'{"telemetry_interval": 100000000000000000000000000000000}'])
@example([b'{"deleted": "telemetry_interval_old"}', b'{"telemetry_interval": 86401}'])
@example([b'{"telemetry_interval": 0.5}', b"{}", b'{"telemetry_interval": 2.3}'])
def test_attribute_notifications(mp, items):
    before = mp.run("notify", [["attributes", text_of(b"{}")]])[0]["iv"]
    out = mp.run("notify", [["attributes", text_of(p)] for p in items])
    no_escapes(out)
    for p, r in zip(items, out):
        if len(p) <= FITS:
            check_attributes(p, r, before)
        before = r["iv"]


def test_a_notification_larger_than_a_datagram_buffer_is_dropped_whole(mp):
    big = b'{"telemetry_interval": 7, "pad": "%s"}' % (b"x" * 1200)
    seq = (b'{"telemetry_interval": 49}', big, b'{"telemetry_interval": 48}')
    out = mp.run("notify", [["attributes", text_of(p)] for p in seq])
    no_escapes(out)
    assert [r["iv"] for r in out] == [49000, 49000, 48000]


# datagrams: valid messages to the live relations (magic tokens), mutated, and junk
RPC_TOKEN, ATTR_TOKEN = b"\x00RPC", b"\x00ATT"


@st.composite
def datagrams(draw):
    mtype = draw(st.integers(0, 3))
    code = draw(
        st.sampled_from([0, 1, 2, 65, 66, 67, 69, 95, 128, 132, 160]) | st.integers(0, 255)
    )
    token = draw(st.sampled_from([RPC_TOKEN, ATTR_TOKEN, b"", b"\x01\x02\x03\x04"]))
    opts = []
    if draw(st.booleans()):
        opts.append((codec.OBSERVE, draw(st.integers(0, 2**24 - 1))))
    if draw(st.booleans()):
        opts.append((codec.CONTENT_FORMAT, draw(st.sampled_from([0, 50, 60, 65535]))))
    payload = draw(payloads(rpc_objects() | attr_objects()))
    if code == 0:
        token, opts, payload = b"", [], b""
    m = Message(mtype, code, draw(st.integers(0, 0xFFFF)), token, opts, payload)
    return m.encode()


raw_datagrams = st.one_of(datagrams(), mutate(datagrams()), st.binary(max_size=40))


@fuzz(25)
@given(batches(raw_datagrams))
def test_datagrams(mp, items):
    out = mp.run("datagram", [text_of(d) for d in items])
    no_escapes(out)
    for d, r in zip(items, out):
        ctl = [bytes.fromhex(c) for c in r["c"]]
        assert len(ctl) <= 1, ctl
        for c in ctl:  # only an empty ACK or RST, for this datagram's message ID
            assert len(c) == 4 and c[0] in (0x60, 0x70) and c[1] == 0 and c[2:] == d[2:4]
        if len(d) >= 4 and d[0] >> 4 == 0x4:  # a CON of version 1 is always answered
            assert len(ctl) == 1, (d.hex(), r)
        assert all(pin in ALLOWED for pin, _ in r["p"])


# provisioning: whatever the first reply, the firmware ends up with a usable token
@st.composite
def provision_replies(draw):
    body = draw(st.dictionaries(st.text(max_size=8), values, max_size=3))
    if draw(st.integers(0, 3)):
        body["status"] = draw(st.sampled_from(["SUCCESS", "FAILURE", "NOT_FOUND"]) | values)
    if draw(st.integers(0, 3)):
        body["credentialsValue"] = draw(st.text(max_size=20) | values)
    if draw(st.booleans()):
        body["errorMsg"] = draw(values)
    code = draw(st.sampled_from([65, 68, 69, 128, 129, 132, 160]) | st.integers(0, 255))
    return code, draw(payloads(st.just(body)))


@fuzz(15)
@given(batches(provision_replies()))
@example([(65, b'{"status": "SUCCESS"}'), (65, b'{"status": "SUCCESS", "credentialsValue": 5}')])
@example([(65, b'{"status": "SUCCESS", "credentialsValue": ""}')])
def test_provisioning_replies(mp, items):
    out = mp.run("provision", [[c, text_of(p)] for c, p in items])
    no_escapes(out)
    for (code, p), r in zip(items, out):
        assert "token" in r, r
        body = parse(p)
        good = (
            code == 65
            and isinstance(body, dict)
            and body.get("status") == "SUCCESS"
            and type(body.get("credentialsValue")) is str
            and body["credentialsValue"]
        )
        if good and not body["credentialsValue"].isascii():
            # MicroPython's json keeps a surrogate pair as two code points: no exact model
            continue
        assert r["token"] == (body["credentialsValue"] if good else "GOOD"), (code, p, r)


# Block2: a download ends with exactly the bytes of the blocks it took, or a named error
@st.composite
def block_replies(draw):
    n = draw(st.integers(1, 5))
    out = []
    exp = draw(st.integers(0, 6))
    etag = draw(st.sampled_from([None, "e1", "e2"]))
    for i in range(n):
        code = draw(st.sampled_from([69, 69, 69, 132, 160, 95]) | st.integers(0, 255))
        more = i < n - 1
        b2 = i << 4 | more << 3 | exp
        size = 16 << exp
        if draw(st.integers(0, 3)) == 0:  # a liar
            b2 = draw(st.none() | st.integers(0, 2**32))
            size = draw(st.integers(0, 1024))
            etag = draw(st.sampled_from([None, "e1", "e2", ""]))
        payload = draw(
            st.binary(min_size=size, max_size=size) if size < 64 else st.just(b"x" * size)
        )
        out.append([code, b2, etag, payload.hex()])
    return out


@fuzz(15)
@given(batches(block_replies()))
@example([[[132, None, None, "ff"]], [[69, 8, None, "00" * 16], [160, None, None, "c328"]]])
def test_block2_replies(mp, items):
    out = mp.run("block2", items)
    no_escapes(out)
    for script, r in zip(items, out):
        got = bytes.fromhex(r["w"])
        # (code 0 is a malformed reply: dropped, and the retransmission gets the next one)
        if script[0][0] and script[0][0] >> 5 != 2:
            assert r.get("x") == "ResponseError", r
        if "n" in r:
            assert r["n"] == len(got)
            whole = b""
            prefixes = {b""}
            for s in script:
                if s[0] == 0:  # dropped as malformed: the retransmission gets the next
                    continue
                whole += bytes.fromhex(s[3])
                prefixes.add(whole)
            assert got in prefixes
        else:
            assert r["x"] in {"ResponseError", "ValueError", "CoapTimeout"}, r


# JSON replies to requests: attributes come back as two objects or a named error
@st.composite
def json_replies(draw):
    fn = draw(st.sampled_from(["attributes", "rpc_call"]))
    code = draw(st.sampled_from([69, 69, 132, 128, 129, 160]) | st.integers(0, 255))
    body = {"client": draw(values), "shared": draw(values)} if draw(st.booleans()) else {}
    obj = draw(st.just(body) | values)
    return fn, code, draw(payloads(st.just(obj)))


@fuzz(15)
@given(batches(json_replies()))
@example([("attributes", 69, b"[1]"), ("attributes", 69, b'{"client": 5}')])
def test_json_replies(mp, items):
    out = mp.run("reply", [[f, c, text_of(p)] for f, c, p in items])
    no_escapes(out)
    for (fn, _, _), r in zip(items, out):
        if "x" in r:
            assert r["x"] in ERRORS | {"ValueError", "UnicodeError", "CoapTimeout"}, r
        elif fn == "attributes":
            assert r["v"] == {"client": "dict", "shared": "dict"}, r


# --- mutation storms: hypothesis picks the seeds, the device process mutates each one AMP
# times and checks what needs no model (nothing escapes, pins, replies, interval, controls)


def amp():
    return int(os.environ.get("FUZZ_AMP", "4"))


def storm(mp, target, inputs):
    n, bad = mp.storm(target, inputs, amp())
    assert n == len(inputs) * amp()
    assert bad == [], bad


@fuzz(10)
@given(batches(payloads(rpc_objects())))
def test_rpc_notification_storm(mp, items):
    storm(mp, "notify", [["rpc", text_of(p)] for p in items])


@fuzz(5)
@given(batches(payloads(attr_objects())))
def test_attribute_notification_storm(mp, items):
    storm(mp, "notify", [["attributes", text_of(p)] for p in items])


@fuzz(10)
@given(batches(datagrams()))
def test_datagram_storm(mp, items):
    storm(mp, "datagram", [text_of(d) for d in items])
