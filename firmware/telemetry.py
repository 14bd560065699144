# telemetry.py: the telemetry loop. Each interval it reads every sensor and posts one message
# (timestamped when the board's clock is set). A message the server cannot take right now goes
# to the spool on flash; spooled messages are sent first, in order, once it answers again, so
# nothing is lost and nothing overtakes. With a device timestamp a message re-sent after a
# lost ACK lands on the same (key, ts) and is stored once.
import asyncio
from asyncio import core
from time import ticks_add, ticks_diff

from coap.client import CoapTimeout, Reset, ResponseError
from thingsboard.backoff import Backoff

from . import sensors as sensors_mod

MAX_INTERVAL_S = 86400  # a day; firmware/config.py has the same limit for interval_s


class Telemetry:
    def __init__(self, device, board, sensors, spool, interval_s, log, acked=None):
        self.device = device
        self.board = board
        self.sensors = sensors
        self.spool = spool
        self.interval = interval_s * 1000
        self.log = log
        self.extra = {}  # values added to the next message only (e.g. counters)
        self.sent = 0
        self.acked = acked or asyncio.Event()  # set once a message reached the server
        self._wake = asyncio.Event()
        # after a refusal (5.00: rate limits), an RST or a network error nothing is sent
        # (readings go to the spool) until this tick
        self._backoff = Backoff(2000, 60000)
        self._resume = None

    def set_interval(self, seconds):
        # the server sets this: past MAX_INTERVAL_S the ESP32's ticks arithmetic overflows
        if (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not 0 < seconds <= MAX_INTERVAL_S
        ):
            raise ValueError("interval must be a whole number of seconds 1-%d" % MAX_INTERVAL_S)
        if seconds * 1000 == self.interval:  # the same again (every new subscription says it)
            return False
        self.interval = seconds * 1000
        self._wake.set()
        return True

    def read_now(self):
        self._wake.set()

    async def cycle(self):
        # the network gets what is left of this interval (at least a second), so readings keep
        # their schedule even when the server is gone (an unanswered message is spooled)
        deadline = ticks_add(core.ticks(), max(self.interval, 1000))
        values = {}
        errors = await sensors_mod.read_all(self.sensors, values)
        for key, msg in errors.items():
            values[key + "_error"] = msg
        values.update(self.extra)
        self.extra.clear()
        dropped = self.spool.dropped
        if dropped:
            values["spool_dropped"] = dropped
        record = {"ts": self.board.now_ms(), "values": values} if self.board.time_set() else values
        body = self.device.payload.telemetry(record)  # JSON, or the profile's protobuf
        if len(self.spool) or not await self._send(body, deadline):
            self.spool.append(body)
            self.log.info("spooled (%d waiting)" % len(self.spool))
        if dropped:
            self.spool.clear_dropped(dropped)  # the count now travels in a message
        await self.flush(deadline)

    async def _send(self, body, deadline):
        # True once the server has it (or refused it for good); False to keep it for later
        if self._resume is not None and ticks_diff(self._resume, core.ticks()) > 0:
            return False  # backing off after a failure
        timeout = ticks_diff(deadline, core.ticks())
        if timeout <= 0:
            return False
        try:
            await self.device.send_telemetry(body, timeout)
        except ResponseError as e:
            # a 4.xx will never be accepted: drop it, say why; but a refused token (4.01) may be
            # fixed on the server, and a 5.00 (its rate limits) passes
            if e.code >> 5 == 4 and e.code != 129:
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
        self.sent += 1
        self.acked.set()
        return True

    def _failed(self):
        self._resume = ticks_add(core.ticks(), self._backoff.next())
        return False

    async def flush(self, deadline):
        while len(self.spool):
            if not await self._send(self.spool.peek(), deadline):
                return False
            self.spool.pop()
        return True

    async def run(self):
        while True:
            start = core.ticks()
            self._wake.clear()
            try:
                await self.cycle()
            except Exception as e:  # a bug in one cycle must not stop the next
                self.log.error("telemetry cycle failed:", repr(e))
            wait = self.interval - ticks_diff(core.ticks(), start)
            if wait > 0 and not self._wake.is_set():
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
