# firmware/telemetry.py on the unix port with a virtual clock: a server that answers 5.00 (its
# rate limits) is tried again only after a growing wait, the readings meanwhile going to the
# spool; once it takes messages again the spool drains in order and nothing is lost.
import os
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
from binascii import hexlify  # noqa: E402

import fakes  # noqa: E402

from coap.client import Client, ResponseError  # noqa: E402
from coap.codec import ACK, CON, CREATED, POST  # noqa: E402
from coap.message import Message  # noqa: E402
from firmware.telemetry import Telemetry  # noqa: E402
from thingsboard import jsonpayload  # noqa: E402
from thingsboard.device import Device  # noqa: E402


class Board:
    def time_set(self):
        return False


class Server:
    # the device's send_telemetry: refuses with 5.00 until taking is set
    payload = jsonpayload

    def __init__(self, clock):
        self.clock = clock
        self.tries = []  # virtual ms of every message sent
        self.stored = []
        self.taking = False

    async def send_telemetry(self, body, timeout=None):
        self.tries.append(self.clock.now())
        if not self.taking:
            raise ResponseError(160, "rate limit")
        self.stored.append(bytes(body))


class Log:
    def __init__(self):
        self.lines = []

    def info(self, *a):
        self.lines.append(a)

    warning = error = info


def test_a_server_refusing_with_5_00_is_tried_again_after_growing_waits():
    async def t():
        clock = fakes.install()
        server = Server(clock)
        root = "/tmp/mp_telemetry_" + hexlify(os.urandom(6)).decode()
        n = [0]

        t = Telemetry(server, Board(), [], (root, 16384), 1, Log())
        cycle = t.cycle

        async def counted():  # each message carries its cycle's number
            n[0] += 1
            t.extra["n"] = n[0]
            await cycle()

        t.cycle = counted
        task = asyncio.create_task(t.run())
        await asyncio.sleep_ms(60500)  # a minute at one reading a second
        tries = list(server.tries)
        spool = t.spool
        assert n[0] == 61 and len(spool) == 61, (n[0], len(spool))
        assert 4 <= len(tries) <= 7, tries  # 2, 4, 8, 16, 32 s apart and more
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        assert all(b > a for a, b in zip(gaps, gaps[1:])) and gaps[0] >= 2000, gaps
        server.taking = True
        await asyncio.sleep_ms(64000)  # past the last wait: the spool drains
        task.cancel()
        got = [int(s.split(b":")[1].strip(b" }")) for s in server.stored]
        assert got == list(range(1, len(got) + 1)) and len(got) >= 61, got
        assert len(spool) == 0
        for name in os.listdir(root):
            os.remove(root + "/" + name)
        os.rmdir(root)

    asyncio.run(t())


# --- exactly once under loss: the real Device, Client and Spool against ThingsBoard's CoAP
# stack on the fake socket


class Tb:
    # ThingsBoard's telemetry resource as its CoAP stack serves it: a message ID is processed
    # once and a retransmission of it is answered again from the cache; loss both ways from a
    # seeded generator
    def __init__(self, sock, loss):
        self.sock = sock
        self.loss = loss
        self.answers = {}  # message ID -> its answer
        self.processed = 0  # messages through the rule engine
        # seq -> times processed; made whole at the start: a dict growing as the heap churns
        # fails to find room on the unix port
        self.readings = bytearray(4096)
        sock.on_send = self.on_send

    def lost(self):
        return random.random() < self.loss

    def on_send(self, data):
        self.sock.sent.clear()  # ten minutes of datagrams would fill the heap
        if self.lost():
            return
        m = Message.decode(data)
        if m.type != CON or m.code != POST:
            return
        if len(self.answers) > 64:  # what left its exchange lifetime (247 s) is forgotten
            now = self.sock.clock.now()
            for mid in [k for k, (t, _) in self.answers.items() if now - t > 247000]:
                del self.answers[mid]
        if m.mid not in self.answers:
            self.processed += 1
            got = json.loads(m.payload)
            for r in got if isinstance(got, list) else [got]:
                seq = r["values"]["seq"]
                self.readings[seq] += 1
            answer = Message(ACK, CREATED, m.mid, m.token).encode()
            self.answers[m.mid] = (self.sock.clock.now(), answer)
        if not self.lost():
            self.sock.deliver(self.answers[m.mid][1], 20)


class Seq:
    name = "seq"

    def __init__(self):
        self.n = 0

    async def read(self, values):
        values["seq"] = self.n
        self.n += 1


class ClockedBoard:
    def __init__(self, clock):
        self.clock = clock

    def time_set(self):
        return True

    def now_ms(self):
        return 1700000000000 + self.clock.now()


class GaveUp:
    # the log, counting the exchanges the device gave up on (kept lines would fill the heap)
    def __init__(self):
        self.n = 0

    def info(self, *a):
        self.n += "no ACK" in str(a[-1])

    warning = error = info


SCRATCH = fakes.scratch_dir("telemetry")


async def lossy(interval_s, loss, minutes=10):
    # readings every interval_s for `minutes` with `loss` both ways, then five minutes without
    # loss for the backlog -> (readings taken, the server, exchanges the device gave up)
    random.seed(1)
    clock = fakes.install()
    sock = fakes.FakeSocket(clock)
    tb = Tb(sock, loss)
    log = GaveUp()
    seq = Seq()
    dev = Device(Client(sock), "T0KEN")
    t = Telemetry(dev, ClockedBoard(clock), [seq], (fakes.empty(SCRATCH), 65536), interval_s, log)
    task = asyncio.create_task(t.run())
    await asyncio.sleep_ms(minutes * 60000)
    readings = seq.n
    tb.loss = 0
    await asyncio.sleep_ms(300000)
    task.cancel()
    assert t.spool is None and not os.listdir(SCRATCH)  # drained, and its files gone
    return readings - 1, tb, log.n  # the last reading may be on its way


def assert_once(readings, tb, gave_up):
    # every reading stored, with its own timestamp; no more messages than readings; a reading
    # goes through the rule engine twice only when the device sent it again after a whole
    # exchange (four retransmissions of one message ID) went unanswered, and then only the
    # readings of that message (a batch holds at most 1024 // 43 of these)
    assert all(tb.readings[s] for s in range(readings)), readings
    assert tb.processed <= readings, (tb.processed, readings)
    again = sum(1 for n in tb.readings if n > 1)
    assert again <= gave_up * 23, (again, gave_up)
    return again


def test_thirty_percent_loss_at_a_one_second_interval_every_reading_once():
    readings, tb, gave_up = asyncio.run(lossy(1, 0.3))
    assert readings >= 590, readings
    assert assert_once(readings, tb, gave_up) == 0 or gave_up


def test_fifty_percent_loss_at_half_a_second_every_reading_once():
    readings, tb, gave_up = asyncio.run(lossy(0.5, 0.5))
    assert readings >= 1190, readings
    assert_once(readings, tb, gave_up)
