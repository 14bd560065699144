# Fault injection: each seeded knob does what it says, by its counters and by what a client
# sees on the wire. Traffic is NON so that no retransmission blurs the counts.
import time

import pytest
from tbsim_helpers import http

from tools.tbsim.wire import codec

N = 300
BATCH = 100
T = "/api/v1/TOKEN_ONE/telemetry"


def faults(sim, config):
    status, snap = http(sim, "POST", "/api/tbsim/faults", config)
    assert status == 200, snap
    return snap


def counters(sim):
    snap = http(sim, "GET", "/api/tbsim/faults")[1]
    return snap["in"]["counters"], snap["out"]["counters"]


def blast(udp, start=0, n=N):
    # n NON POSTs, request i carries token i; -> send time per token
    sent = {}
    for i in range(start, start + n):
        tok = i.to_bytes(2, "big")
        sent[tok] = time.monotonic()
        udp.request(codec.POST, T, b"{v:%d}" % i, mtype=codec.NON, token=tok)
    return sent


def traffic(udp, n=N, batch=BATCH):
    # n requests in bursts small enough for the kernel's socket buffers -> all replies
    replies = []
    for start in range(0, n, batch):
        blast(udp, start, min(batch, n - start))
        replies += udp.drain(0.3)
    return replies


def order(replies):
    return [int.from_bytes(m.token, "big") for m in replies]


def near(count, n, p):
    # within 4.5 standard deviations of a binomial mean
    return abs(count - n * p) <= 4.5 * (n * p * (1 - p)) ** 0.5


@pytest.mark.parametrize("direction", ["in", "out"])
def test_loss(sim, udp, device, direction):
    faults(sim, {"seed": 1, direction: {"loss": 0.3}})
    replies = traffic(udp)
    c = counters(sim)[0 if direction == "in" else 1]
    assert c["datagrams"] == N and near(c["dropped"], N, 0.3)
    assert len(replies) == N - c["dropped"]
    assert len(set(order(replies))) == len(replies)


@pytest.mark.parametrize("direction", ["in", "out"])
def test_duplication(sim, udp, device, direction):
    faults(sim, {"seed": 2, direction: {"duplicate": 0.4}})
    replies = traffic(udp)
    c = counters(sim)[0 if direction == "in" else 1]
    assert near(c["duplicated"], N, 0.4)
    # a duplicate request arrives before its reply exists and is ignored; a duplicate reply
    # is just seen twice. Either way nothing is processed twice.
    assert len(replies) == N + (c["duplicated"] if direction == "out" else 0)
    assert set(order(replies)) == set(range(N))
    assert sim.call(lambda: len(sim.transport.exchanges)) == N


@pytest.mark.parametrize("direction", ["in", "out"])
def test_delay_and_jitter(sim, udp, device, direction):
    faults(sim, {"seed": 3, direction: {"delay": 0.2, "jitter": 0.15}})
    sent = blast(udp, 0, 60)
    rtts = []
    for _ in range(60):
        m = udp.recv()
        rtts.append(time.monotonic() - sent[m.token])
    c = counters(sim)[0 if direction == "in" else 1]
    assert c["delayed"] == 60
    # never early; late only by what a busy machine adds (the median stays within the jitter)
    rtts.sort()
    assert rtts[0] >= 0.2 and rtts[30] < 0.2 + 0.15 + 0.05 and rtts[-1] < 0.2 + 0.15 + 0.5
    assert rtts[-1] - rtts[0] > 0.075  # jitter spreads them (uniform over 0.15 s)


@pytest.mark.parametrize("direction", ["in", "out"])
def test_reordering(sim, udp, device, direction):
    faults(sim, {"seed": 4, direction: {"reorder": 0.2}})
    seq = order(traffic(udp))
    assert sorted(seq) == list(range(N))
    late = sum(1 for i, s in enumerate(seq) if i and s < max(seq[:i]))
    c = counters(sim)[0 if direction == "in" else 1]
    assert near(c["reordered"], N, 0.2)
    # a datagram held at the end of a burst has nothing to overtake it
    assert 0 <= c["reordered"] - late <= N // BATCH


def test_same_seed_same_faults(sim, udp, device):
    runs = []
    for _ in range(2):
        faults(sim, {"seed": 9, "in": {"loss": 0.5}})  # a new seed restarts the streams
        runs.append(sorted(order(traffic(udp, 100))))
        http(sim, "POST", "/api/tbsim/faults/reset", {})
        sim.call(sim.transport.exchanges.clear)  # same MIDs again are new requests
        udp.mid -= 100
    assert runs[0] == runs[1] and 20 < len(runs[0]) < 80
    faults(sim, {"seed": 10})
    assert sorted(order(traffic(udp, 100))) != runs[0]


def test_drop_observes_forgets_every_relation_silently(sim, udp, device):
    req = udp.request(
        codec.GET, "/api/v1/TOKEN_ONE/attributes", token=b"ob", opts=[(codec.OBSERVE, 0)]
    )
    udp.response(req)
    status, snap = http(sim, "POST", "/api/tbsim/faults/drop-observes")
    assert status == 200 and snap["observe_drops"] == 1
    assert sim.call(lambda: len(sim.registry.relations)) == 0
    sim.set_shared(device["id"], {"a": 1})
    assert udp.nothing(0.5)


def test_faults_from_constructor_and_snapshot(tmp_path):
    from tbsim_helpers import make_sim

    s = make_sim(tmp_path / "d", faults={"out": {"loss": 1.0}}, fault_seed=7)
    try:
        snap = http(s, "GET", "/api/tbsim/faults")[1]
        assert snap["seed"] == 7 and snap["out"]["loss"] == 1.0 and snap["in"]["loss"] == 0.0
    finally:
        s.stop()


def test_periodic_observe_drops(tmp_path):
    from tbsim_helpers import Udp, make_sim

    s = make_sim(tmp_path / "d", drop_observes_every=0.3)
    udp = Udp(s)
    try:
        s.create_device("dev-1", token="TOKEN_ONE")
        req = udp.request(
            codec.GET, "/api/v1/TOKEN_ONE/rpc", token=b"r", opts=[(codec.OBSERVE, 0)]
        )
        udp.ack(udp.recv())
        assert req.token == b"r"
        assert udp.nothing(0.5)  # dropped without a word to the device
        assert s.call(lambda: len(s.registry.relations)) == 0
        assert http(s, "GET", "/api/tbsim/faults")[1]["observe_drops"] >= 1
    finally:
        udp.close()
        s.stop()
