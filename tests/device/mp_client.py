# Device tests of lib/coap on the unix port: a fake socket and a virtual clock, so
# retransmission timing, dedup, response styles, Observe and block-wise are checked exactly.
import asyncio
import random

import fakes

from coap.block import download, upload
from coap.client import Client, CoapTimeout, Reset, ResponseError
from coap.codec import (
    ACK,
    BLOCK1,
    BLOCK2,
    CON,
    CONTENT,
    CONTINUE,
    CREATED,
    DELETED,
    EMPTY,
    GET,
    NON,
    NOT_FOUND,
    OBSERVE,
    POST,
    PUT,
    RST,
    URI_PATH,
)
from coap.message import Message

PATH = [(URI_PATH, "api"), (URI_PATH, "v1"), (URI_PATH, "T0KEN"), (URI_PATH, "telemetry")]
SLACK = 50  # ms of real time a case may take on top of virtual time


def setup(peer=None, **kw):
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    client = Client(sock, **kw)
    client.start()
    if peer:
        sock.on_send = lambda data: respond(peer, sock, data)
    return clock, sock, client


def respond(peer, sock, data):
    m = Message.decode(data)
    if 0 < m.code < 32:  # the peer script sees requests only
        peer(sock, m)


def sent(sock):
    return [Message.decode(d) for _, d in sock.sent]


def reply(sock, mtype, code, mid, token=b"", options=None, payload=b"", delay=0):
    sock.deliver(Message(mtype, code, mid, token, options or [], payload).encode(), delay)


def near(t, want):
    assert want <= t <= want + SLACK, "at %d ms, expected %d" % (t, want)


def is_empty_ack(m, mid):
    return m.type == ACK and m.code == EMPTY and m.mid == mid and m.token == b""


# --- response styles


async def test_piggybacked_response():
    def peer(sock, m):
        reply(sock, ACK, CREATED, m.mid, m.token)

    _, sock, client = setup(peer)
    ex = client.exchange()
    r = await ex.request(POST, PATH, b'{"t":1}')
    assert r is ex and ex.code == CREATED
    (req,) = sent(sock)
    assert req.type == CON and req.code == POST and len(req.token) == 4
    assert req.opts(URI_PATH) == [b"api", b"v1", b"T0KEN", b"telemetry"]
    assert req.payload == b'{"t":1}'


async def test_on_response_runs_in_the_readers_turn_and_release_lets_the_datagram_go():
    # a download writes its chunk there and releases it: no datagram waits in RAM for the
    # task that awaits it
    def peer(sock, m):
        reply(sock, ACK, CONTENT, m.mid, m.token, payload=b"chunk")

    _, sock, client = setup(peer)
    ex = client.exchange()
    seen = []
    resumed = []

    def arrived(e):
        seen.append((e.code, bytes(e.payload()), len(resumed)))
        e.release()

    ex.on_response = arrived
    await ex.request(GET, PATH)
    resumed.append(1)
    assert seen == [(CONTENT, b"chunk", 0)]  # before the awaiting task ran on
    assert ex.code == CONTENT and bytes(ex.payload()) == b""


async def test_a_receive_out_of_memory_leaves_the_reader_running():
    # recv allocates before it reads: the datagram stays queued and is read once memory is back
    def peer(sock, m):
        reply(sock, ACK, CREATED, m.mid, m.token)

    _, sock, client = setup(peer)
    logged = []
    client.log = lambda *a: logged.append(a)
    recv = sock.recv
    failures = [MemoryError("memory allocation failed")]

    def scarce(n):
        if failures:
            raise failures.pop()
        return recv(n)

    sock.recv = scarce
    ex = await client.exchange().request(POST, PATH, b"{}")
    assert ex.code == CREATED and not failures
    assert logged == [("receive failed:", "MemoryError('memory allocation failed',)")]


async def test_separate_response_after_empty_ack():
    def peer(sock, m):
        if m.type == CON:
            reply(sock, ACK, EMPTY, m.mid)
            reply(sock, CON, CONTENT, 0x7777, m.token, payload=b"late", delay=1500)

    clock, sock, client = setup(peer)
    ex = client.exchange()
    await ex.request(GET, PATH)
    assert ex.code == CONTENT and bytes(ex.payload()) == b"late"
    near(clock.now(), 1500)
    req, ack = sent(sock)
    assert is_empty_ack(ack, 0x7777)
    assert ack.encode() == b"\x60\x00\x77\x77"  # 0.00, no token, nothing else


async def test_separate_con_response_without_ack():
    # ThingsBoard: a CON response with a new MID and no empty ACK first
    def peer(sock, m):
        if m.type == CON:
            reply(sock, CON, CREATED, 0x0102, m.token, delay=100)

    clock, sock, client = setup(peer)
    ex = client.exchange()
    await ex.request(POST, PATH, b"{}")
    assert ex.code == CREATED
    await asyncio.sleep_ms(60000)  # virtual: no retransmission may follow
    req, ack = sent(sock)
    assert is_empty_ack(ack, 0x0102)


async def test_non_request_and_response():
    def peer(sock, m):
        reply(sock, NON, CONTENT, 0x0200, m.token, payload=b"x")

    _, sock, client = setup(peer)
    ex = client.exchange()
    await ex.request(GET, PATH, con=False)
    assert ex.code == CONTENT
    (req,) = sent(sock)  # a NON response gets no ACK
    assert req.type == NON


async def test_response_matched_by_token_not_order():
    held = []

    def peer(sock, m):
        held.append(m)
        if len(held) == 2:  # answer the second request first
            for r in reversed(held):
                reply(sock, CON, CONTENT, (0x1000 + r.mid) & 0xFFFF, r.token, payload=r.payload)

    _, sock, client = setup(peer)
    a = client.exchange()
    b = client.exchange()
    a.request(POST, PATH, b"a")
    b.request(POST, PATH, b"b")
    await a
    await b
    assert bytes(a.payload()) == b"a" and bytes(b.payload()) == b"b"
    assert a.token != b.token


# --- reliability


async def test_retransmission_schedule_doubles():
    _, sock, client = setup(random_factor=1.0)
    ex = client.exchange()
    try:
        await ex.request(POST, PATH, b"{}")
    except CoapTimeout as e:
        assert "5 transmissions" in str(e)
    else:
        raise AssertionError("no timeout")
    times = [t for t, _ in sock.sent]
    for t, want in zip(times, (0, 2000, 6000, 14000, 30000)):
        near(t, want)
    assert len(times) == 5
    assert len(set(d for _, d in sock.sent)) == 1  # same bytes: same MID and token


async def test_retransmission_parameters_settable():
    clock, sock, client = setup(ack_timeout=500, random_factor=1.0, max_retransmit=2)
    try:
        await client.exchange().request(POST, PATH)
    except CoapTimeout:
        pass
    times = [t for t, _ in sock.sent]
    assert len(times) == 3
    for t, want in zip(times, (0, 500, 1500)):
        near(t, want)
    near(clock.now(), 3500)


async def test_initial_timeout_randomised_within_factor():
    clock = fakes.install()
    firsts = []
    for seed in range(8):
        random.seed(seed)
        sock = fakes.FakeSocket(clock)
        client = Client(sock)
        start = clock.now()
        try:
            await asyncio.wait_for_ms(client.exchange().request(POST, PATH), 10000)
        except asyncio.TimeoutError:
            pass
        t = [t - start for t, _ in sock.sent]
        firsts.append(t[1])
        assert 2000 <= t[1] <= 3000 + SLACK, t
        assert abs((t[2] - t[1]) - 2 * t[1]) <= SLACK, t  # then doubling
    assert max(firsts) - min(firsts) > 100, firsts  # really random


async def test_message_ids_in_sequence():
    def peer(sock, m):
        reply(sock, ACK, CREATED, m.mid, m.token)

    _, sock, client = setup(peer)
    ex = client.exchange()
    for _ in range(3):
        await ex.request(POST, PATH)
    mids = [m.mid for m in sent(sock)]
    assert mids[1] == (mids[0] + 1) & 0xFFFF and mids[2] == (mids[1] + 1) & 0xFFFF


async def test_duplicate_con_response_acked_again_and_delivered_once():
    got = []

    def peer(sock, m):
        if m.code == GET:
            for d in (0, 10, 20):
                reply(sock, CON, CONTENT, 0x4242, m.token, [(OBSERVE, 5)], b"n", delay=d)

    _, sock, client = setup(peer)
    obs = await client.observe(PATH, lambda o: got.append(bytes(o.payload())))
    await asyncio.sleep_ms(100)
    assert got == [b"n"]
    acks = [m for m in sent(sock)[1:]]
    assert len(acks) == 3 and all(is_empty_ack(a, 0x4242) for a in acks)
    assert client.stats["dup"] == 2
    assert obs.active


async def test_rst_for_unexpected_con_and_requests():
    _, sock, client = setup()
    reply(sock, CON, CONTENT, 0x0A0A, b"\x01\x02", payload=b"who?")  # unknown token
    reply(sock, CON, GET, 0x0B0B, b"\x03")  # a request: we serve nothing
    reply(sock, CON, EMPTY, 0x0C0C)  # CoAP ping
    await asyncio.sleep_ms(10)
    rsts = sent(sock)
    assert [(m.type, m.code, m.mid, m.token) for m in rsts] == [
        (RST, EMPTY, 0x0A0A, b""),
        (RST, EMPTY, 0x0B0B, b""),
        (RST, EMPTY, 0x0C0C, b""),
    ]


async def test_reset_of_our_request_raises():
    def peer(sock, m):
        reply(sock, RST, EMPTY, m.mid)

    _, sock, client = setup(peer)
    try:
        await client.exchange().request(GET, PATH)
    except Reset:
        pass
    else:
        raise AssertionError("no Reset")


async def test_malformed_datagrams_dropped_device_keeps_working():
    def peer(sock, m):
        reply(sock, ACK, CREATED, m.mid, m.token)

    _, sock, client = setup(peer)
    # (an empty datagram closes an ESP32 socket: tests/device/mp_esp32.py)
    for junk in (b"\x40", b"\x4f\x01\x00\x01", b"\x80\x01\x00\x01", b"\x40\x45\x00\x01\xff"):
        sock.deliver(junk)
    await asyncio.sleep_ms(10)
    assert client.stats["bad"] == 4, client.stats
    # the well-formed-header CONs are rejected with RST, the rest dropped
    got = [(m.type, m.mid) for m in sent(sock)]
    assert got == [(RST, 1), (RST, 1)], got
    ex = await client.exchange().request(POST, PATH)
    assert ex.code == CREATED


async def test_named_timeout_when_only_acked():
    # OTA past the end: ThingsBoard ACKs and never answers
    def peer(sock, m):
        reply(sock, ACK, EMPTY, m.mid)

    clock, _, client = setup(peer)
    try:
        await client.exchange().request(GET, PATH, timeout=5000)
    except CoapTimeout as e:
        assert "no response" in str(e)
    near(clock.now(), 5000)


async def test_cancelled_waiter_forgets_exchange():
    _, sock, client = setup()
    ex = client.exchange()
    try:
        await asyncio.wait_for_ms(ex.request(GET, PATH), 1000)
    except asyncio.TimeoutError:
        pass
    assert ex not in client._active
    reply(sock, CON, CONTENT, 0x0909, bytes(ex.token))
    await asyncio.sleep_ms(10)
    assert sent(sock)[-1].type == RST  # a late response to it is unexpected now


# --- Observe


def notifier(sock, token, seqs, start=100, step=100, mtype=CON):
    for i, s in enumerate(seqs):
        reply(sock, mtype, CONTENT, 0x5000 + i, token, [(OBSERVE, s)], b"%d" % s, start + i * step)


async def test_observe_in_order_and_stale_dropped():
    got = []

    def peer(sock, m):
        if m.code == GET:
            reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 0)], b"0")
            notifier(sock, m.token, [1, 3, 2, 4])  # 2 arrives after 3: stale

    _, sock, client = setup(peer)
    obs = await client.observe(PATH, lambda o: got.append(o.uint(OBSERVE)))
    (reg,) = [m for m in sent(sock) if m.code == GET]
    assert reg.uint(OBSERVE) == 0 and reg.opt(OBSERVE) == b""  # Observe 0 encoded empty
    await asyncio.sleep_ms(1000)
    assert got == [0, 1, 3, 4]
    acked = [m.mid for m in sent(sock) if m.type == ACK]
    assert acked == [0x4000, 0x5000, 0x5001, 0x5002, 0x5003]  # stale ones are ACKed too
    assert obs.active


async def test_observe_freshness_wraps_and_ages():
    got = []

    def peer(sock, m):
        reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 0xFFFFF0)], b"")
        reply(sock, CON, CONTENT, 0x4001, m.token, [(OBSERVE, 5)], b"", 100)  # wrapped
        reply(sock, CON, CONTENT, 0x4002, m.token, [(OBSERVE, 4)], b"", 200)  # stale
        reply(sock, CON, CONTENT, 0x4003, m.token, [(OBSERVE, 3)], b"", 130000)  # >128 s later

    _, _, client = setup(peer)
    await client.observe(PATH, lambda o: got.append(o.uint(OBSERVE)))
    await asyncio.sleep_ms(140000)
    assert got == [0xFFFFF0, 5, 3]


async def end_case(code, opts):
    events = []

    def peer(sock, m):
        reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 0)], b"")
        reply(sock, CON, code, 0x4001, m.token, opts, b"", 100)

    _, sock, client = setup(peer)
    obs = await client.observe(PATH, lambda o: events.append((o.code, o.active)))
    await asyncio.sleep_ms(500)
    assert events == [(CONTENT, True), (code, False)]
    assert not obs.active and obs not in client._active
    return sock


async def test_observe_ended_by_202_from_thingsboard():
    await end_case(DELETED, [(OBSERVE, 0)])


async def test_observe_ended_by_error_code():
    await end_case(NOT_FOUND, [])


async def test_observe_ended_by_response_without_observe():
    await end_case(CONTENT, [])


async def test_observe_registration_reset_and_renewal_same_token():
    events = []
    regs = []

    def peer(sock, m):
        regs.append(m)
        if len(regs) == 1:
            reply(sock, RST, EMPTY, m.mid)
        else:
            reply(sock, ACK, CONTENT, m.mid, m.token, [(OBSERVE, 7)], b"")

    _, sock, client = setup(peer)
    obs = client.observe(PATH, lambda o: events.append(o.active))
    try:
        await obs
    except Reset:
        pass
    assert not obs.active
    await obs.renew()
    assert obs.active and events == [True]
    assert regs[0].token == regs[1].token and regs[0].mid != regs[1].mid


async def test_observe_deregister_with_observe_1():
    def peer(sock, m):
        if m.uint(OBSERVE) == 0:
            reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 0)], b"")
        else:
            reply(sock, ACK, EMPTY, m.mid)  # ThingsBoard only ACKs the cancel

    _, sock, client = setup(peer)
    obs = await client.observe(PATH, lambda o: None)
    await obs.cancel()
    reg, _, cancel = sent(sock)
    assert cancel.code == GET and cancel.uint(OBSERVE) == 1 and cancel.token == reg.token
    assert cancel.opts(URI_PATH) == reg.opts(URI_PATH)
    assert not obs.active and obs not in client._active
    reply(sock, CON, CONTENT, 0x4100, reg.token, [(OBSERVE, 1)], b"")
    await asyncio.sleep_ms(10)
    assert sent(sock)[-1].type == RST  # notifications after the cancel are rejected


async def test_observe_non_notifications_not_acked():
    got = []

    def peer(sock, m):
        reply(sock, NON, CONTENT, 0x4000, m.token, [(OBSERVE, 0)], b"")
        notifier(sock, m.token, [1, 2], mtype=NON)

    _, sock, client = setup(peer)
    await client.observe(PATH, lambda o: got.append(o.uint(OBSERVE)), con=False)
    await asyncio.sleep_ms(500)
    assert got == [0, 1, 2]
    assert [m.type for m in sent(sock)] == [NON]


async def test_failing_callback_does_not_stop_the_client():
    def bad(o):
        raise ValueError("handler bug")

    def peer(sock, m):
        if m.code == GET:
            reply(sock, ACK, CONTENT, m.mid, m.token, [(OBSERVE, 0)], b"")
        else:
            reply(sock, ACK, CREATED, m.mid, m.token)

    _, _, client = setup(peer)
    await client.observe(PATH, bad)
    ex = await client.exchange().request(POST, PATH)
    assert ex.code == CREATED


# --- block-wise


def block_server(body, max_size=1024):
    def peer(sock, m):
        b2 = m.uint(BLOCK2, 6)
        exp = min(b2 & 7, {16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6}[max_size])
        size = 16 << exp
        off = (b2 >> 4) * (16 << (b2 & 7))
        part = body[off : off + size]
        more = off + size < len(body)
        blk = (off // size) << 4 | more << 3 | exp
        reply(sock, ACK, CONTENT, m.mid, m.token, [(4, b"e1"), (BLOCK2, blk)], part)

    return peer


async def test_block2_download_streams_with_size_negotiation():
    body = bytes(range(256)) * 20  # 5120 bytes
    _, sock, client = setup(block_server(body, max_size=256))
    chunks = []
    n = await download(client, PATH, lambda d: chunks.append(bytes(d)), size=1024)
    assert n == len(body) and b"".join(chunks) == body
    assert max(len(c) for c in chunks) == 256  # the server's smaller size was adopted
    reqs = sent(sock)
    assert reqs[0].uint(BLOCK2) == 6  # early negotiation: num 0, 1024 bytes
    assert [m.uint(BLOCK2) >> 4 for m in reqs[1:]] == list(range(1, 20))


async def test_block2_server_lowers_the_size_after_the_first_block():
    # 1024 bytes first, then 256-byte blocks: the next number is the offset over the new size
    body = bytes(range(256)) * 12  # 3072 bytes
    full, small = block_server(body), block_server(body, max_size=256)
    calls = []

    def peer(sock, m):
        calls.append(m)
        (full if len(calls) == 1 else small)(sock, m)

    _, sock, client = setup(peer)
    chunks = []
    n = await download(client, PATH, lambda d: chunks.append(bytes(d)), size=1024)
    assert n == len(body) and b"".join(chunks) == body
    assert [len(c) for c in chunks] == [1024] + [256] * 8
    # block 1 of 1024 is asked for, answered as block 4 of 256; then 5, 6, ... of 256
    assert [(m.uint(BLOCK2) >> 4, m.uint(BLOCK2) & 7) for m in sent(sock)] == [
        (0, 6),
        (1, 6),
    ] + [(k, 4) for k in range(5, 12)]


async def test_block2_download_to_writer():
    body = b"x" * 3000

    class Sink:
        n = 0

        def write(self, d):
            Sink.n += len(d)

    _, _, client = setup(block_server(body))
    assert await download(client, PATH, Sink(), size=512) == 3000 and Sink.n == 3000


async def test_block2_error_raises():
    def peer(sock, m):
        reply(sock, ACK, NOT_FOUND, m.mid, m.token)

    _, _, client = setup(peer)
    try:
        await download(client, PATH, lambda d: None)
    except ResponseError as e:
        assert e.code == NOT_FOUND
    else:
        raise AssertionError("no error")


async def test_block1_upload():
    got = bytearray()

    def peer(sock, m):
        b1 = m.uint(BLOCK1)
        got.extend(m.payload)
        assert m.uint(60) == 2500  # Size1
        code = CONTINUE if b1 & 8 else CREATED
        reply(sock, ACK, code, m.mid, m.token, [(BLOCK1, b1)])

    _, sock, client = setup(peer)
    body = bytes(range(250)) * 10
    ex = await upload(client, PUT, PATH, body, size=1024)
    assert ex.code == CREATED and bytes(got) == body
    assert [m.uint(BLOCK1) for m in sent(sock)] == [0x0E, 0x1E, 0x26]  # num/M/SZX 6


async def test_block1_server_asks_for_smaller_blocks():
    got = bytearray()

    def peer(sock, m):
        b1 = m.uint(BLOCK1)
        if b1 & 7 > 4:
            # keep the block, ask for 256-byte ones from now on (RFC 7959 §2.5)
            reply(sock, ACK, CONTINUE, m.mid, m.token, [(BLOCK1, b1 & ~7 | 4)])
            got.extend(m.payload)
            return
        got.extend(m.payload)
        reply(sock, ACK, CONTINUE if b1 & 8 else CREATED, m.mid, m.token, [(BLOCK1, b1)])

    _, sock, client = setup(peer)
    body = bytes(range(200)) * 10
    ex = await upload(client, POST, PATH, body, size=1024)
    assert ex.code == CREATED and bytes(got) == body
    sizes = [len(m.payload) for m in sent(sock)]
    assert sizes[0] == 1024 and set(sizes[1:-1]) == {256}


async def test_callers_token_then_random_again():
    def peer(sock, m):
        reply(sock, ACK, CONTENT, m.mid, m.token)

    _, sock, client = setup(peer)
    ex = client.exchange()
    await ex.request(GET, PATH, token=b"\xca\xfe")
    await ex.request(GET, PATH, token=b"")
    await ex.request(GET, PATH)
    assert [m.token for m in sent(sock)][:2] == [b"\xca\xfe", b""]
    assert len(sent(sock)[2].token) == 4


async def test_renew_of_live_relation_done_on_ack_and_keeps_observing():
    got = []
    regs = []

    def peer(sock, m):
        regs.append(m)
        if len(regs) == 1:
            reply(sock, ACK, CONTENT, m.mid, m.token, [(OBSERVE, 3)], b"")
        else:  # ThingsBoard may only ACK a same-token re-registration
            reply(sock, ACK, EMPTY, m.mid)
            reply(sock, CON, CONTENT, 0x6000, m.token, [(OBSERVE, 1)], b"", 100)

    _, sock, client = setup(peer)
    obs = await client.observe(PATH, lambda o: got.append(o.uint(OBSERVE)))
    await obs.renew()
    assert obs.active and obs in client._active
    await asyncio.sleep_ms(200)
    assert got == [3, 1]  # the counter restarted: still fresh after a renewal
    assert regs[1].token == regs[0].token


async def test_same_mid_different_message_is_not_a_duplicate():
    # ThingsBoard draws notification MIDs at random: a repeat MID with new content is new
    got = []

    def peer(sock, m):
        reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 0)], b"a")
        reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 1)], b"b", 50)
        reply(sock, CON, CONTENT, 0x4000, m.token, [(OBSERVE, 1)], b"b", 60)  # a real dup

    _, sock, client = setup(peer)
    await client.observe(PATH, lambda o: got.append(bytes(o.payload())))
    await asyncio.sleep_ms(200)
    assert got == [b"a", b"b"]
    assert client.stats["dup"] == 1
    assert len([m for m in sent(sock) if m.type == ACK]) == 3
