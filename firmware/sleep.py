# sleep.py: power mode "sleep" (config power), imported only in that mode. The board wakes,
# reports and deep-sleeps for the rest of telemetry.interval_s. A wake, all at once where
# ThingsBoard allows: one reading posted with the spooled ones (batched), and the two
# subscriptions: the attributes one brings every shared attribute (changes made while the board
# slept), the RPC one the RPCs the server kept (ThingsBoard sends its pending RPCs to a new
# RPC subscription; with a PSM profile only shortly after an uplink, which the subscription
# is). Then listen_ms for RPCs after the RPC subscription is confirmed; each runs once and is
# answered; the subscriptions end (so the server does not send to a sleeping board) and the
# board sleeps. An update, an RPC being served or a technician's stay_awake keep it up
# (config power.keep_awake); awake_max_s bounds the rest.
# What must not repeat survives: the RPC journal on flash (a power cut after an RPC ran must
# not run it again), the UDP port and the next message ID in the RTC memory (ThingsBoard keys
# relations and de-duplicates message IDs by address and port), the interval the server set.
import asyncio
import json
import random
from asyncio import core
from time import ticks_add, ticks_diff

from micropython import const

from thingsboard.backoff import within

from . import log as logs
from . import save_json

log = logs.Log("sleep")
_JOURNAL = const("rpcs.json")  # the RPC journal, beside config.json
_STAY_KEY = const("stay_awake")  # shared attribute: true keeps the board awake (maintenance)
_STAY_S = const(600)  # stayAwake RPC without a number of seconds


_kept = None  # read once per boot: boot's connect and the wake share it


def kept(board):
    # what the last wake left in the RTC memory: {"port", "mid", "said", "ap"} (ap: the Wi-Fi
    # access point, the board's). The port and message IDs go on only after a deep sleep: a run
    # that ended otherwise (a reset into an update, a crash) used IDs it never saved, which the
    # server would take for duplicates. So a new port then, as at the first wake after power on
    global _kept
    if _kept is not None:
        return _kept
    try:
        k = json.loads(board.memory() or b"{}")
    except ValueError:
        k = {}
    if not k.get("port") or board.reset_cause() != "deepsleep":
        old = k["port"] = k.get("port")
        k.pop("mid", None)
        while k["port"] == old:
            k["port"] = 49152 + random.getrandbits(14)
        save(board, k)
    _kept = k
    return k


def save(board, memory):
    board.memory(json.dumps(memory).encode())


class Wake:
    def __init__(self, app, kept, woke):
        # woke: the tick the wake began
        self.app = app
        self.kept = kept
        self.woke = woke
        self.power = app.cfg["power"]
        self.stay_until = None  # tick, from a stayAwake RPC
        self.stay = False  # the stay_awake shared attribute
        self._journal = app.board.path(_JOURNAL)

    def rpc(self, method, params):
        # the RPC this mode adds: stayAwake [seconds] keeps the board up (0: sleep again)
        if method != "stayAwake":
            return None
        s = _STAY_S if params in (None, {}, "") else params
        if type(s) not in (int, float) or not 0 <= s <= 86400:
            raise ValueError("stayAwake takes a number of seconds 0-86400")
        self.stay_until = ticks_add(core.ticks(), int(s * 1000)) if s else None
        return {"awake_s": s}

    def stay_awake(self, key, value):
        self.stay = value is True

    async def run(self):
        self.began = core.ticks()  # the CoAP part of the wake begins
        app = self.app
        d = app.device
        self._recall(d)
        d.on_rpc_change = self._write_journal
        d.subscribe_to_attribute(_STAY_KEY, self.stay_awake)
        limit = self.power["awake_max_s"] * 1000
        end = ticks_add(self.woke, limit)
        d.start()  # both subscriptions, together
        sending = asyncio.create_task(app.telemetry.once(limit))
        await within(d.ready.wait(), ticks_diff(end, core.ticks()))
        # a kept RPC comes once the RPC subscription's confirmation is ACKed: a round trip
        # after it (as long as the subscriptions took), then listen_ms. ThingsBoard sends one
        # kept RPC a subscription at once: the wait ends when it comes
        rtt = ticks_diff(core.ticks(), self.began)
        await within(d.rpc_came.wait(), rtt + self.power["listen_ms"])
        await self._until(end, lambda: not self._busy(("update", "rpc", "stay_awake")))
        await self._until(None, lambda: not self._busy(self.power["keep_awake"]))
        await within(sending, ticks_diff(end, core.ticks()))
        await self._end(d)

    async def _until(self, end, done):
        # wait for done() (checked every 20 ms) until the tick end (None: no end)
        while not done():
            if end is not None and ticks_diff(end, core.ticks()) <= 0:
                return
            await asyncio.sleep_ms(20)

    def _busy(self, keep):
        # whether what keep names keeps the board up (past awake_max_s: only power.keep_awake)
        a = self.app
        stay = self.stay or (
            self.stay_until is not None and ticks_diff(self.stay_until, core.ticks()) > 0
        )
        return (
            ("update" in keep and any(u.busy() for u in a.updates))
            or ("rpc" in keep and a.device.rpc_busy())
            or ("stay_awake" in keep and stay)
        )

    async def _end(self, d):
        # the subscriptions end, what must survive is kept, the board sleeps
        d.unsubscribe()
        app = self.app
        k = self.kept
        k["mid"] = d.client.mid
        k["said"] = app.interval_said()
        save(app.board, k)
        now = core.ticks()
        ms = max(1000, app.telemetry.interval - ticks_diff(now, self.woke))
        log.info(
            "awake %d ms (CoAP %d ms), sleeping %d ms"
            % (ticks_diff(now, self.woke), ticks_diff(now, self.began), ms)
        )
        app.board.deepsleep(ms)

    # --- the RPC journal

    def _recall(self, d):
        try:
            with open(self._journal) as f:
                rpcs = json.load(f)
        except (OSError, ValueError):
            return
        for r in rpcs:
            if r[2] is not None:
                r[2] = r[2].encode() if type(r[2]) is str else bytes(r[2])
        d.recall_rpcs(rpcs)

    def _write_journal(self, rpcs):
        for r in rpcs:  # a reply is JSON text, or protobuf bytes as a list of numbers
            if r[2] is not None:
                try:
                    r[2] = bytes(r[2]).decode()
                except UnicodeError:
                    r[2] = list(r[2])
        save_json(self._journal, rpcs)
