# lib/thingsboard/device.py's server-side RPC on the unix port, driven by hand: ThingsBoard
# re-sends every pending RPC on each new subscription, so the same notification can come while
# the handler runs, while its reply is in flight, or after the server took the reply. The
# handler runs once; a repeat gets no second reply message while one is in flight, the reply
# again when it did not get through, and once more (only once) after it was confirmed.
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT + "/lib")

import asyncio  # noqa: E402

from thingsboard.device import Device  # noqa: E402

RPC = b'{"id":7,"method":"setGpio","params":{"pin":26,"value":1}}'


class Obs:
    # an RPC observation's notification
    active = True

    def __init__(self, raw):
        self.raw = raw

    def payload(self):
        return memoryview(self.raw)


class NoClient:
    # the Device's client: never used here, replies go through send_rpc_reply
    on_reopen = None


class Rig:
    # a Device whose replies wait for the test: each send_rpc_reply records the reply and
    # waits for release(ok)
    def __init__(self):
        self.dev = Device(NoClient(), "tok")
        self.calls = []
        self.sends = []
        self.results = []
        self.dev.set_server_side_rpc_request_handler(self.handler)
        self.dev.send_rpc_reply = self.send

    def handler(self, method, params):
        self.calls.append((method, params))
        return params

    async def send(self, rpc_id, reply):
        done = asyncio.Event()
        self.sends.append((rpc_id, bytes(reply)))
        self.results.append(done)
        await done.wait()
        if not done.ok:
            raise OSError("no answer")

    async def release(self, ok=True):
        # the oldest reply in flight gets through (or not), and the device hears so
        done = self.results.pop(0)
        done.ok = ok
        done.set()
        for _ in range(3):
            await asyncio.sleep_ms(0)

    async def notify(self, raw=RPC):
        self.dev._on_rpc(Obs(raw))
        for _ in range(3):  # the tasks it started run up to their first wait
            await asyncio.sleep_ms(0)


def run(test):
    asyncio.run(test(Rig()))


def test_a_repeat_while_the_reply_is_in_flight_sends_nothing():
    async def t(r):
        await r.notify()
        assert r.calls == [("setGpio", {"pin": 26, "value": 1})]
        assert r.sends == [(7, b'{"pin": 26, "value": 1}')], r.sends
        await r.notify()  # the server re-sent it: our reply is still on its way
        await r.notify()
        assert len(r.calls) == 1 and len(r.sends) == 1
        assert r.dev.stats["rpc_duplicate"] == 2
        await r.release()
        await r.notify()  # after the reply was confirmed: the reply once more
        assert len(r.calls) == 1 and len(r.sends) == 2 and r.sends[1] == r.sends[0]
        await r.release()
        await r.notify()  # and never again
        await r.notify()
        assert len(r.calls) == 1 and len(r.sends) == 2

    run(t)


def test_a_repeat_after_a_failed_reply_sends_it_again():
    async def t(r):
        await r.notify()
        await r.release(ok=False)  # the reply did not get through
        await r.notify()
        assert len(r.calls) == 1 and len(r.sends) == 2 and r.sends[1] == r.sends[0]
        await r.notify()  # in flight again: nothing
        assert len(r.sends) == 2
        await r.release()
        await r.notify()  # confirmed: once more
        assert len(r.sends) == 3 and len(r.calls) == 1

    run(t)


def test_the_same_rpc_after_the_late_window_is_a_new_rpc():
    # ThingsBoard restarted: its ids start from 0 again, and the same request is a new one
    async def t(r):
        r.dev.rpc_late_ms = 0
        await r.notify()
        await r.release()
        await r.notify()
        assert len(r.calls) == 2 and len(r.sends) == 2

    run(t)


def test_another_rpc_with_the_same_id_is_a_new_rpc():
    # ids restart at 0 when ThingsBoard restarts: a different notification is a different RPC
    async def t(r):
        await r.notify()
        await r.release()
        await r.notify(b'{"id":7,"method":"setGpio","params":{"pin":26,"value":0}}')
        assert r.calls == [
            ("setGpio", {"pin": 26, "value": 1}),
            ("setGpio", {"pin": 26, "value": 0}),
        ]
        assert len(r.sends) == 2

    run(t)
