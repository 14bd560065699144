# telemetry.py: the telemetry loop. Each interval it reads every sensor; a sender task posts
# the readings (timestamped when the board's clock is set). A message keeps its CoAP message
# ID until it is answered or its exchange is over, whatever the interval: the server drops a
# retransmission of a message it has, but takes a new message ID as a new message. Readings
# taken meanwhile, or while the server cannot take them, go to the spool on flash, which
# drains first, in order and in batches (one JSON array of timestamped readings per datagram),
# so nothing is lost, nothing overtakes and a backlog clears in few messages.
import asyncio
import os
from asyncio import core
from time import ticks_add, ticks_diff

from micropython import const

from coap.client import CoapTimeout, Reset, ResponseError
from thingsboard.backoff import Backoff, within

from . import drop, sensors

_MIN_MS = const(500)  # the interval's limits; firmware/config.py has the same for interval_s
_MAX_MS = const(86400000)  # a day: past it the ESP32's ticks arithmetic overflows
_BATCH_BYTES = const(1024)  # a batch's payload: one datagram with ThingsBoard's 1024-byte blocks


class Telemetry:
    def __init__(self, device, board, sensors, spool_at, interval_s, log, acked=None):
        # spool_at: (folder, capacity) of the spool, opened (and its code loaded) only when
        # there is something to keep: while the server takes every message it costs no heap
        self.device = device
        self.board = board
        self.sensors = sensors
        self.spool_at = spool_at
        self.spool = None
        try:
            if os.listdir(spool_at[0]):
                self._open()
        except OSError:
            pass  # no spool yet
        self.interval = int(interval_s * 1000)
        self.log = log
        self.extra = {}  # values added to the next message only (e.g. counters)
        self.sent = 0  # messages the server took
        self.acked = acked or asyncio.Event()  # set once a message reached the server
        self.wake = asyncio.Event()  # read now
        self._go = asyncio.Event()  # the sender has work
        self._done = asyncio.Event()  # the sender is through with the reading handed to it
        self.idle = asyncio.Event()  # the sender has nothing left to send
        self._body = None  # that reading, kept in RAM while its exchange runs
        self._dropped = 0  # the spool's dropped count that _body carries
        self._one = False  # send the spool's oldest alone (the server refused its batch)
        # after a refusal (5.00: rate limits), an RST or a network error nothing is sent
        # until this tick
        self._backoff = Backoff(2000, 60000)
        self._resume = None

    def set_interval(self, seconds):
        # the server sets this (NaN and infinity compare false)
        ms = seconds * 1000 if type(seconds) in (int, float) else 0
        if not _MIN_MS <= ms <= _MAX_MS:
            raise ValueError(
                "interval must be a number of seconds %s-%d" % (_MIN_MS / 1000, _MAX_MS // 1000)
            )
        ms = int(ms)
        if ms == self.interval:  # the same again (every new subscription says it)
            return False
        self.interval = ms
        self.wake.set()
        return True

    def read_now(self):
        self.wake.set()

    def kick(self):
        # the link is back: try the spool now, not after the backoff
        self._resume = None
        self._go.set()

    async def cycle(self):
        values = {}
        errors = await sensors.read_all(self.sensors, values)
        for key, msg in errors.items():
            values[key + "_error"] = msg
        values.update(self.extra)
        self.extra.clear()
        direct = self._body is None and not self.waiting()
        # the count of readings the full spool dropped travels in the first message sent
        # straight after the spool has drained: the link is back by then
        dropped = self.spool.dropped if direct and self.spool is not None else 0
        if dropped:
            values["spool_dropped"] = dropped
        record = {"ts": self.board.now_ms(), "values": values} if self.board.time_set() else values
        body = self.device.payload.telemetry(record)  # JSON, or the profile's protobuf
        if not direct:
            self._spool(body)
            return
        self._body, self._dropped = body, dropped
        self._done.clear()
        self._go.set()
        # wait for the answer while this interval lasts (at least a second); the exchange
        # goes on after that and the next readings go to the spool
        await within(self._done.wait(), max(self.interval, 1000))

    def _open(self):
        if self.spool is None:
            from .spool import Spool

            self.spool = Spool(*self.spool_at)
        return self.spool

    def waiting(self):
        return 0 if self.spool is None else len(self.spool)

    def _spool(self, body):
        self._open().append(body)
        self.log.info("spooled (%d waiting)" % len(self.spool))

    async def _sender(self):
        while True:
            if self._body is None and not self.waiting():
                self._go.clear()
                self.idle.set()
                await self._go.wait()
                self.idle.clear()
            wait = 0 if self._resume is None else ticks_diff(self._resume, core.ticks())
            if wait > 0:
                self._go.clear()
                await within(self._go.wait(), wait)  # kick() ends the wait
                continue
            try:
                await self._next()
            except Exception as e:  # a bug (or a flash error) must not stop the sending
                self.log.error("telemetry sender:", repr(e))
                self._failed()

    async def _next(self):
        body = self._body
        n = 1
        if body is None:
            body, n = self._batch()
        sent = await self._send(body, n)
        if self._body is not None:
            if sent:
                self._body = None
                if self._dropped:
                    self.spool.clear_dropped(self._dropped)  # the count reached the server
            elif not self.waiting():  # kept on flash where that keeps the order
                self._body = None
                self._spool(body)
            self._done.set()
        elif sent:
            self.spool.pop(n)
        self._close()

    def _close(self):
        # a drained spool goes (its code too) until the next reading that needs it
        if self.spool is not None and not self.waiting() and self.spool.retire():
            self.spool = None
            drop("firmware.spool")

    def _batch(self):
        # (body, records in it): the spool's oldest, with the timestamped ones after it while
        # they fit one datagram; a payload format that cannot batch sends one at a time
        records = self.spool.head(1 if self._one else _BATCH_BYTES)
        p = self.device.payload
        n = 1
        if p.batchable(records[0]):
            size = len(records[0]) + 2
            while n < len(records) and p.batchable(records[n]):
                size += len(records[n]) + 1
                if size > _BATCH_BYTES:
                    break
                n += 1
        return (p.batch(records[:n]) if n > 1 else records[0]), n

    async def _send(self, body, n):
        # True once the server has it (or refused it for good); False to keep it for later.
        # No timeout: the exchange runs its course, so a lost answer means a retransmission of
        # the same message ID, never a second message.
        try:
            await self.device.send_telemetry(body)
        except ResponseError as e:
            # a 4.xx will never be accepted: drop it, say why (a refused batch is split first);
            # but a refused token (4.01) may be fixed on the server, and a 5.00 (its rate
            # limits) passes
            if e.code >> 5 == 4 and e.code != 129:
                if n > 1:
                    self._one = True
                    return False
                self.log.error("telemetry refused, dropped:", e)
                return True
            self.log.warning("telemetry not taken:", e)
            return self._failed()
        except CoapTimeout as e:  # CoAP's own retransmissions back off already
            self.log.warning("telemetry not delivered:", e)
            return False
        except (Reset, OSError) as e:
            self.log.warning("telemetry not delivered:", e)
            return self._failed()
        self._backoff.reset()
        self._resume = None
        self._one = False
        self.sent += 1
        self.acked.set()
        return True

    def _failed(self):
        self._resume = ticks_add(core.ticks(), self._backoff.next())
        return False

    async def once(self, ms):
        # a sleeping board's wake: one reading, then the spool, for at most ms -> True once
        # nothing is left to send. What is left waits on flash for the next wake.
        sender = asyncio.create_task(self._sender())
        try:
            return await within(self._read_and_send(), ms)
        finally:
            sender.cancel()
            if self._body is not None:  # on flash after the younger ones: it has its own time
                self._spool(self._body)
                self._body = None

    async def _read_and_send(self):
        await self.cycle()
        await self.idle.wait()

    async def run(self):
        sender = asyncio.create_task(self._sender())
        try:
            while True:
                start = core.ticks()
                self.wake.clear()
                try:
                    await self.cycle()
                except Exception as e:  # a bug in one cycle must not stop the next
                    self.log.error("telemetry cycle failed:", repr(e))
                wait = self.interval - ticks_diff(core.ticks(), start)
                if wait > 0 and not self.wake.is_set():
                    await within(self.wake.wait(), wait)
        finally:
            sender.cancel()
