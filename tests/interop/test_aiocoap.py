# The MicroPython CoAP client (lib/coap) against an aiocoap 0.4 server (aiocoap_server.py).
import hashlib
import os

import pytest

UPLOAD = """
import asyncio, json, sys
from coap.block import upload
from coap.client import connect
from coap.codec import BLOCK1, BLOCK2, GET
from coap.uri import uri_options

async def main():
    # argv: port code file block_size: upload the file to /echo, then GET /echo's digest
    c = connect("127.0.0.1", int(sys.argv[1]))
    c.start()
    with open(sys.argv[3], "rb") as f:
        data = f.read()
    size = int(sys.argv[4])
    ex = await upload(c, int(sys.argv[2]), uri_options("echo"), data, size)
    out = {"code": ex.code, "block1": ex.uint(BLOCK1), "block2": ex.uint(BLOCK2)}
    # the echo of a large upload comes back block-wise: its first block is here
    out["first_block_ok"] = bytes(ex.payload()) == data[:len(ex.payload())]
    out["first_block_len"] = len(ex.payload())
    out["tx"] = c.stats["tx"]
    ex = await c.exchange().request(GET, uri_options("echo"))
    out["digest"] = bytes(ex.payload()).decode()
    report(c, out)
"""

DOWNLOAD = """
import asyncio, hashlib, json, sys
from coap.block import download
from coap.client import connect
from coap.uri import uri_options

async def main():
    # argv: port path block_size
    c = connect("127.0.0.1", int(sys.argv[1]))
    c.start()
    h = hashlib.sha256()
    sizes = []

    def sink(chunk):
        h.update(chunk)
        sizes.append(len(chunk))

    n = await download(c, uri_options(sys.argv[2]), sink, int(sys.argv[3]))
    out = {"n": n, "sha": h.digest().hex(), "blocks": len(sizes), "max_block": max(sizes)}
    report(c, out)
"""

OBSERVE = """
import asyncio, json, sys
from coap.client import connect
from coap.codec import GET, OBSERVE
from coap.uri import uri_options

async def observers(client):
    ex = await client.exchange().request(GET, uri_options("observers"))
    return int(bytes(ex.payload()))

async def main():
    # argv: port wanted: observe /counter until `wanted` responses came, then cancel.
    # A second client (its own socket) asks the server how many observers it has.
    port, wanted = int(sys.argv[1]), int(sys.argv[2])
    c = connect("127.0.0.1", port)
    c.start()
    probe = connect("127.0.0.1", port)
    probe.start()
    got = []
    enough = asyncio.Event()

    def notified(o):
        got.append([o.code, o.uint(OBSERVE), bytes(o.payload()).decode(), o.active])
        if len(got) >= wanted:
            enough.set()

    out = {"before": await observers(probe)}
    obs = await c.observe(uri_options("counter"), notified)
    await asyncio.wait_for_ms(enough.wait(), 5000)
    out["during"] = await observers(probe)
    await obs.cancel()
    n = len(got)
    out.update(got=got, cancel_code=obs.code, active=obs.active)
    out["after"] = await observers(probe)
    await asyncio.sleep_ms(500)  # 2 notification periods
    out["callbacks_after"] = len(got) - n
    probe.close()
    report(c, out)
"""

PUT, POST = 3, 2


def test_get(mp, aiocoap_server):
    assert mp.cli(aiocoap_server.uri("hello")) == (0, "2.05\nhello from aiocoap\n")


def test_not_found(mp, aiocoap_server):
    rc, out = mp.cli(aiocoap_server.uri("nothing/here"))
    assert rc == 1, out
    assert out.splitlines()[0] == "4.04"


@pytest.mark.parametrize("method", ["post", "put"])
def test_echo(mp, aiocoap_server, method):
    rc, out = mp.cli("-m", method, "-e", "hi there, aiocoap", aiocoap_server.uri("echo"))
    assert (rc, out) == (0, "2.04\nhi there, aiocoap\n")


def test_query(mp, aiocoap_server):
    # percent-decoding of the URI, plus an extra Uri-Query option from -O 15,...
    uri = aiocoap_server.uri("query?a=1&b=two%20words")
    rc, out = mp.cli(uri, "-O", "15,c=3")
    assert (rc, out) == (0, "2.05\na=1&b=two words&c=3\n")


def test_cli_token(mp, aiocoap_server):
    assert mp.cli("-T", "c0ffee42", aiocoap_server.uri("token")) == (0, "2.05\nc0ffee42\n")


def test_cli_token_blockwise(mp, aiocoap_server):
    # /token is small, so the Block2 download is a single response
    rc, out = mp.cli("-T", "c0ffee42", "-b", "1024", aiocoap_server.uri("token"))
    assert (rc, out) == (0, "2.05\nc0ffee42\n")


@pytest.mark.parametrize(("code", "size"), [(PUT, 1024), (POST, 512)])
def test_block1_upload(mp, aiocoap_server, tmp_path, code, size):
    data = os.urandom(5000 + size)
    path = tmp_path / "up.bin"
    path.write_bytes(data)
    r = mp.script(UPLOAD, aiocoap_server.port, code, path, size)
    blocks = -(-len(data) // size)
    assert r["code"] == 68  # 2.04 after the last block
    # the final response acknowledges the last block: number blocks-1, no more, our size
    szx = size.bit_length() - 5
    assert r["block1"] == (blocks - 1) << 4 | szx
    assert r["tx"] == blocks  # one request per block, no retransmission
    assert r["first_block_ok"] and r["first_block_len"] > 0
    assert r["block2"] is not None and r["block2"] & 8  # more of the echo to fetch
    assert r["digest"] == "%d %s" % (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("size", [1024, 512])
def test_block2_download(mp, aiocoap_server, size):
    big = aiocoap_server.big
    r = mp.script(DOWNLOAD, aiocoap_server.port, "big", size)
    assert r["n"] == len(big)
    assert r["sha"] == hashlib.sha256(big).hexdigest()
    assert r["blocks"] == len(big) // size
    assert r["max_block"] == size
    assert r["stats"]["retransmit"] == 0


def test_observe(mp, aiocoap_server):
    r = mp.script(OBSERVE, aiocoap_server.port, 5)
    got = r["got"]
    assert len(got) == 5  # the registration's response and 4 notifications
    assert all(g[0] == 69 and g[3] for g in got), got
    seqs = [g[1] for g in got]
    assert seqs == sorted(set(seqs)), got  # Observe numbers strictly increase
    counts = [int(g[2]) for g in got]
    assert counts == sorted(set(counts)), got  # and the counter with them
    assert counts[-1] - counts[0] >= 3
    assert (r["before"], r["during"], r["after"]) == (0, 1, 0)  # deregistered
    assert r["cancel_code"] == 69
    assert r["active"] is False
    assert r["callbacks_after"] == 0
    assert r["stats"]["bad"] == 0


def test_observe_cli(mp, aiocoap_server):
    rc, out = mp.cli("-o", "1", aiocoap_server.uri("counter"), timeout=10)
    assert rc == 0, out
    lines = out.splitlines()
    assert len(lines) % 2 == 0, out
    codes, counts = lines[0::2], [int(v) for v in lines[1::2]]
    assert set(codes) == {"2.05"}, out
    assert len(counts) >= 4, out  # 0.2 s period: about 5 notifications in 1 s
    assert counts == sorted(set(counts)), out
