# firmware/telemetry.py on the unix port with a virtual clock: a server that answers 5.00 (its
# rate limits) is tried again only after a growing wait, the readings meanwhile going to the
# spool; once it takes messages again the spool drains in order and nothing is lost.
import os
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import asyncio  # noqa: E402
from binascii import hexlify  # noqa: E402

import fakes  # noqa: E402

from coap.client import ResponseError  # noqa: E402
from firmware.spool import Spool  # noqa: E402
from firmware.telemetry import Telemetry  # noqa: E402
from thingsboard import jsonpayload  # noqa: E402


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
        spool = Spool(root, 16384)
        n = [0]

        t = Telemetry(server, Board(), [], spool, 1, Log())
        cycle = t.cycle

        async def counted():  # each message carries its cycle's number
            n[0] += 1
            t.extra["n"] = n[0]
            await cycle()

        t.cycle = counted
        task = asyncio.create_task(t.run())
        await asyncio.sleep_ms(60500)  # a minute at one reading a second
        tries = list(server.tries)
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
