# The MicroPython CoAP client (lib/coap) against libcoap 4.3's coap-server-notls, with
# coap-client-notls as the second opinion for block-wise transfers.
import hashlib
import os
import socket
import time
from datetime import datetime

import pytest

# MicroPython scripts (run by the mp fixture); each prints one JSON line last.

REQUEST = """
import asyncio, json, sys, time
from coap.client import connect
from coap.codec import GET
from coap.uri import uri_options

async def main():
    # argv: port path query ack_timeout_ms
    c = connect("127.0.0.1", int(sys.argv[1]), ack_timeout=int(sys.argv[4]))
    c.start()
    t0 = time.ticks_ms()
    ex = await c.exchange().request(GET, uri_options(sys.argv[2], sys.argv[3]))
    ms = time.ticks_diff(time.ticks_ms(), t0)
    out = {"code": ex.code, "payload": bytes(ex.payload()).decode(), "ms": ms}
    report(c, out)
"""

BLOCKS = """
import asyncio, hashlib, json, sys
from coap.block import download, upload
from coap.client import connect
from coap.codec import CONTENT_FORMAT, OCTETS, PUT
from coap.uri import uri_options

async def main():
    # argv: port put|get|both path block_size [file]
    port, op, path, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = connect("127.0.0.1", port)
    c.start()
    out = {}
    if op in ("put", "both"):
        with open(sys.argv[5], "rb") as f:
            data = f.read()
        ex = await upload(c, PUT, uri_options(path) + [(CONTENT_FORMAT, OCTETS)], data, size)
        out["put"] = ex.code
    if op in ("get", "both"):
        h = hashlib.sha256()
        sizes = []

        def sink(chunk):
            h.update(chunk)
            sizes.append(len(chunk))

        out["n"] = await download(c, uri_options(path), sink, size)
        out["sha"] = h.digest().hex()
        out["blocks"] = len(sizes)
        out["max_block"] = max(sizes)
    report(c, out)
"""

OBSERVE_CANCEL = """
import asyncio, json, sys
from coap.client import connect
from coap.codec import OBSERVE
from coap.uri import uri_options

async def main():
    # argv: port wanted quiet_ms
    c = connect("127.0.0.1", int(sys.argv[1]))
    c.start()
    wanted = int(sys.argv[2])
    got = []
    enough = asyncio.Event()

    def notified(o):
        got.append([o.code, o.uint(OBSERVE), bytes(o.payload()).decode(), o.active])
        if len(got) >= wanted:
            enough.set()

    obs = await c.observe(uri_options("time"), notified)
    await asyncio.wait_for_ms(enough.wait(), 8000)
    await obs.cancel()
    out = {"got": got, "cancel_code": obs.code, "cancel_observe": obs.uint(OBSERVE)}
    out["active"] = obs.active
    rx, n = c.stats["rx"], len(got)
    await asyncio.sleep_ms(int(sys.argv[3]))  # the server's next notification would come here
    out["rx_after"] = c.stats["rx"] - rx
    out["callbacks_after"] = len(got) - n
    report(c, out)
"""

OBSERVE_CHANGES = """
import asyncio, json, sys
from coap.client import connect
from coap.codec import OBSERVE, PUT
from coap.uri import uri_options

async def main():
    # argv: port path: PUT v0 (creates it), observe, then PUT v1..v3 and await each notification.
    # The PUTs go through a second client (socket), so the notifications are the only
    # datagrams the observing client receives.
    port = int(sys.argv[1])
    c = connect("127.0.0.1", port)
    c.start()
    w = connect("127.0.0.1", port)
    w.start()
    opts = uri_options(sys.argv[2])
    writer = w.exchange()
    await writer.request(PUT, opts, b"v0")
    created = writer.code
    got = []
    changed = asyncio.Event()

    def notified(o):
        got.append([o.uint(OBSERVE), bytes(o.payload()).decode()])
        changed.set()

    obs = await c.observe(opts, notified)
    codes = []
    for i in range(1, 4):
        changed.clear()
        await writer.request(PUT, opts, b"v%d" % i)
        codes.append(writer.code)
        await asyncio.wait_for_ms(changed.wait(), 3000)
    await obs.cancel()
    out = {"created": created, "codes": codes, "got": got, "stats": c.stats}
    c.close()
    w.close()
    print(json.dumps(out))
"""

BACK_TO_BACK = """
import asyncio, json, sys, time
from coap.client import connect
from coap.codec import GET
from coap.uri import uri_options

async def main():
    # Two requests in flight on one client; the loop is busy (blocking sleep) while both
    # responses arrive, so both datagrams wait in the socket when the reader runs.
    c = connect("127.0.0.1", int(sys.argv[1]))
    c.start()
    a = c.exchange().request(GET, uri_options("time", "ticks"))
    b = c.exchange().request(GET, uri_options(""))
    time.sleep_ms(200)
    t0 = time.ticks_ms()
    await a
    await b
    out = {"a": [a.code, bytes(a.payload()).hex()], "b": [b.code, len(b.payload())]}
    out["ms"] = time.ticks_diff(time.ticks_ms(), t0)
    report(c, out)
"""


def code_line(out):
    return out.splitlines()[0] if out else ""


# --- plain requests


def test_get(mp, libcoap):
    rc, out = mp.cli(libcoap.uri())
    assert rc == 0, out
    assert code_line(out) == "2.05"
    assert "This is a test server made with libcoap" in out


def test_get_not_found_exits_1(mp, libcoap):
    rc, out = mp.cli(libcoap.uri("no/such/thing"))
    assert rc == 1, out
    assert out.splitlines()[:2] == ["4.04", "Not Found"]


def test_non_confirmable_get(mp, libcoap):
    rc, out = mp.cli("-N", libcoap.uri("time?ticks"))
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "2.05"
    assert abs(int(lines[1]) - time.time()) < 30


def test_query(mp, libcoap):
    # /time?ticks answers seconds since the epoch instead of the date: the query got through
    rc, out = mp.cli(libcoap.uri("time?ticks"))
    assert rc == 0, out
    code, ticks = out.splitlines()[:2]
    assert code == "2.05"
    assert abs(int(ticks) - time.time()) < 30
    rc, out = mp.cli(libcoap.uri("time"))
    assert rc == 0, out
    datetime.strptime(out.splitlines()[1], "%b %d %H:%M:%S")  # "Nov 25 22:35:41"


def test_put_post_get_delete(mp, libcoap):
    uri = libcoap.uri("crud")
    assert mp.cli("-m", "put", "-e", "first", uri) == (0, "2.01\n")  # created (-d)
    assert mp.cli(uri) == (0, "2.05\nfirst\n")
    assert mp.cli("-m", "put", "-e", "second", uri) == (0, "2.04\n")
    assert mp.cli(uri) == (0, "2.05\nsecond\n")
    assert mp.cli("-m", "post", "-e", "third", uri) == (0, "2.04\n")
    assert mp.cli(uri) == (0, "2.05\nthird\n")
    assert mp.cli("-m", "delete", uri) == (0, "2.02\n")
    assert mp.cli(uri) == (1, "4.04\nNot Found\n")


def test_post_creates_and_content_format(mp, libcoap):
    uri = libcoap.uri("posted")
    assert mp.cli("-m", "post", "-A", "50", "-e", '{"t":21.5}', uri) == (0, "2.01\n")
    rc, out = mp.cli("-v", uri)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "2.05"
    assert "  option 12: b'2'" in lines  # Content-Format 50 (JSON) kept by the server
    assert lines[-1] == '{"t":21.5}'


def test_post_not_allowed(mp, libcoap):
    rc, out = mp.cli("-m", "post", "-e", "x", libcoap.uri())
    assert rc == 1, out
    assert code_line(out) == "4.05"


def test_ipv6(mp, libcoap_factory):
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = libcoap_factory(host="::1")
    rc, out = mp.cli(server.uri("time?ticks"))
    assert rc == 0, out
    assert code_line(out) == "2.05"
    assert abs(int(out.splitlines()[1]) - time.time()) < 30


# --- separate responses


def test_separate_response(mp, libcoap):
    # /async?1: an empty ACK now, the CON 2.05 "done" one second later
    t0 = time.monotonic()
    rc, out = mp.cli(libcoap.uri("async?1"))
    elapsed = time.monotonic() - t0
    assert (rc, out) == (0, "2.05\ndone\n")
    assert elapsed >= 0.95


def test_separate_response_script(mp, libcoap):
    r = mp.script(REQUEST, libcoap.port, "async", "1", 2000)
    assert (r["code"], r["payload"]) == (69, "done")
    assert r["ms"] >= 950
    assert r["stats"]["retransmit"] == 0  # the empty ACK stopped the retransmissions
    # GET, empty ACK <- , CON response ->, our ACK
    assert (r["stats"]["tx"], r["stats"]["rx"]) == (2, 2)


# --- lost datagrams (coap-server -l 1 drops its first outgoing datagram)


def test_lost_response_is_retransmitted(mp, libcoap_factory):
    server = libcoap_factory("-l", "1", probe=False)  # a probe would use up the loss
    r = mp.script(REQUEST, server.port, "time", "ticks", 300)
    assert r["code"] == 69
    assert abs(int(r["payload"]) - time.time()) < 30
    assert r["stats"]["retransmit"] == 1
    assert r["stats"]["tx"] == 2
    assert r["ms"] >= 300


def test_lost_empty_ack_of_separate_response(mp, libcoap_factory):
    # the empty ACK is lost: we retransmit the GET, the server ACKs again, and the separate
    # response still arrives once
    server = libcoap_factory("-l", "1", probe=False)
    r = mp.script(REQUEST, server.port, "async", "1", 300)
    assert (r["code"], r["payload"]) == (69, "done")
    assert r["stats"]["retransmit"] >= 1
    assert r["ms"] >= 950


# --- observe


def _observe_lines(out):
    lines = out.splitlines()
    assert len(lines) % 2 == 0, out
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def test_observe_time_cli(mp, libcoap):
    rc, out = mp.cli("-o", "2", libcoap.uri("time"), timeout=10)
    assert rc == 0, out
    responses = _observe_lines(out)
    assert len(responses) >= 3, out  # the first response and at least 2 notifications
    assert all(code == "2.05" for code, _ in responses), out
    times = [datetime.strptime(text, "%b %d %H:%M:%S") for _, text in responses]
    assert times == sorted(times), out
    assert (times[-1] - times[0]).total_seconds() >= 1, out


def test_observe_cancel_stops_notifications(mp, libcoap):
    r = mp.script(OBSERVE_CANCEL, libcoap.port, 3, 1500)
    got = r["got"]
    assert len(got) == 3
    assert all(g[0] == 69 and g[3] for g in got), got
    seqs = [g[1] for g in got]
    assert seqs == sorted(set(seqs)), got  # Observe numbers strictly increase
    # the deregistration (GET with Observe: 1) was answered by a plain response
    assert r["cancel_code"] == 69
    assert r["cancel_observe"] is None
    assert r["active"] is False
    # the server dropped the relation: no notification in the following 1.5 s (it sends one
    # every second while someone observes)
    assert r["rx_after"] == 0, r
    assert r["callbacks_after"] == 0, r


def test_observe_dynamic_resource_sees_puts(mp, libcoap):
    r = mp.script(OBSERVE_CHANGES, libcoap.port, "watched")
    assert r["created"] == 65
    assert r["codes"] == [68, 68, 68]
    assert [g[1] for g in r["got"]] == ["v0", "v1", "v2", "v3"]
    seqs = [g[0] for g in r["got"]]
    assert seqs == sorted(set(seqs)), r
    assert r["stats"]["bad"] == 0
    assert r["stats"]["retransmit"] == 0


def test_two_datagrams_waiting_at_once(mp, libcoap):
    # datagrams queued together must stay apart (a stream read would merge them)
    r = mp.script(BACK_TO_BACK, libcoap.port)
    code, payload = r["a"]
    assert code == 69
    assert bytes.fromhex(payload).isdigit(), r  # just the ticks, not the next datagram too
    assert abs(int(bytes.fromhex(payload)) - time.time()) < 30
    assert r["b"][0] == 69
    assert r["stats"]["bad"] == 0
    assert r["stats"]["retransmit"] == 0, r  # both responses were taken on arrival


# --- block-wise transfers of a 60 KB binary resource (-d: dynamic resources)


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    data = os.urandom(60 * 1024)
    path = tmp_path_factory.mktemp("blob") / "blob.bin"
    path.write_bytes(data)
    return path, data, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [1024, 256])
def test_block_put_then_get(mp, libcoap, blob, size):
    path, data, digest = blob
    r = mp.script(BLOCKS, libcoap.port, "both", "blob%d" % size, size, path)
    assert r["put"] == 65  # 2.01 Created after the last Block1
    assert r["n"] == len(data)
    assert r["sha"] == digest
    assert r["blocks"] == len(data) // size
    assert r["max_block"] == size
    assert r["stats"]["retransmit"] == 0


def test_block_put_ours_get_libcoap(mp, libcoap, blob, tmp_path, coap_client):
    path, data, digest = blob
    r = mp.script(BLOCKS, libcoap.port, "put", "ours", 1024, path)
    assert r["put"] == 65
    got = tmp_path / "got.bin"
    out = coap_client("-m", "get", "-b", "1024", "-o", got, libcoap.uri("ours"))
    assert got.exists(), out
    assert hashlib.sha256(got.read_bytes()).hexdigest() == digest


def test_block_put_libcoap_get_ours(mp, libcoap, blob, coap_client):
    path, data, digest = blob
    out = coap_client("-m", "put", "-f", path, "-b", "1024", libcoap.uri("theirs"))
    r = mp.script(BLOCKS, libcoap.port, "get", "theirs", 1024)
    assert r["sha"] == digest, out
    assert r["n"] == len(data)
    assert r["blocks"] == 60


def test_cli_block2_text(mp, libcoap, tmp_path, coap_client):
    # /example_data is 1500 bytes of text; the CLI streams it after a "2.05" line
    ref = tmp_path / "ref.txt"
    out = coap_client("-m", "get", "-b", "1024", "-o", ref, libcoap.uri("example_data"))
    expected = ref.read_bytes().decode()
    assert len(expected) == 1500, out
    rc, out = mp.cli("-b", "256", libcoap.uri("example_data"))
    assert rc == 0, out
    assert out == "2.05\n" + expected + "\n"


def test_cli_block1_upload(mp, libcoap, blob, tmp_path, coap_client):
    path, data, digest = blob
    rc, out = mp.cli("-m", "put", "-b", "512", "-f", path, libcoap.uri("cliput"))
    assert (rc, out) == (0, "2.01\n")
    got = tmp_path / "got.bin"
    out = coap_client("-m", "get", "-b", "1024", "-o", got, libcoap.uri("cliput"))
    assert got.exists(), out
    assert hashlib.sha256(got.read_bytes()).hexdigest() == digest
