# board: the one place that touches hardware. Only firmware/board/*.py import machine, esp32,
# network, dht, onewire, ds18x20, ntptime and esp; everything else gets a Board from get().
#
# The Board interface (firmware/board/esp32.py on an ESP32, firmware/board/sim.py elsewhere):
#   name                       "esp32" or "unix-sim"
#   root                       folder holding config.json and the spool ("/" on an ESP32)
#   path(name)                 name in root (an absolute name as it is)
#   pin(num, direction, invert=False, initial=None, pull_up=False) -> .value() / .value(v)
#                              direction "in" or "out"; values are logical (after invert),
#                              initial is the logical value an output starts with
#   button(num) -> .value()    1 while pressed (active low with pull-up, like the BOOT button)
#   led(num, invert=False)     an output pin starting off, or None when num is None
#   signal_error(pin=LED_PIN, invert=False)  blink the LED in the background: bad config
#   adc(pin, atten_db) -> .read_u16()          atten_db one of 0, 2.5, 6, 11
#   chip                       "esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6" ... as the
#                              board reports it, or None (the unix simulation's own rules)
#   chip_temperature() -> float °C, or None where the chip gives no °C (the classic ESP32)
#   raw_temperature() -> int   the classic ESP32's uncalibrated value, or None on other chips
#   dht(pin, kind) -> .measure() .temperature() .humidity()     kind "dht11" or "dht22"
#   ds18b20(pin) -> .convert(); wait .wait_ms (await it); .read() -> [(rom_hex, °C), ...]
#   async connect(ssid, password, ifconfig=None, ap=None)  returns once joined; retries with
#                              exponential backoff; ifconfig: a static [ip, mask, gw, dns]; ap:
#                              a dict the board keeps the joined access point in ({} after a
#                              power on: learnt once; then joined directly) or None
#   isconnected() -> bool; ip() -> str; mac() -> "aa:bb:..."; unique_id() -> hex str
#   async sync_time()          one NTP attempt; a failure is logged, never raised
#   async keep_time()          NTP again with backoff until the clock is right
#   time_set() -> bool (the clock is right); now_ms() -> epoch ms (int)
#   reset(); deepsleep(ms)     neither returns (deepsleep turns the radio off first)
#   restart()                  a soft reset: MicroPython starts over (boot.py, main.py) on a
#                              fresh heap, the chip, its radio and a trial untouched; no return
#   memory(data=None)          bytes kept across deep sleep, lost with the power (the RTC's)
#   reset_cause() -> "power_on" | "hard_reset" | "watchdog" | "deepsleep" | "soft_reset"
#                    | "brownout" | "unknown": what started this run; after the firmware's
#                    own restart (carried, set by start.py), what started the boot before it
#   free_heap() -> int
#   partition                  the esp32.Partition class (or the unix simulation's): OTA
#                              slots, boot selection and rollback, for lib/ota
#   log, backoff_ms, backoff_max_ms    replaceable: a firmware.log.Log, the join retry waits
# A sensor that cannot be read raises (OSError mostly, as the ESP32 drivers do).
import asyncio
import gc
import sys
import time

from ..log import Log

LED_PIN = 2  # the on-board LED of most ESP32 DevKit boards
# time.time_ns() counts from 2000 on ports whose epoch is 2000, from 1970 on the others
_EPOCH_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


def get(root=None):
    if sys.platform == "esp32":
        from .esp32 import Board

        return Board()
    from .sim import Board

    if root is None:
        import os

        root = (os.getenv("COAPBOARD_ROOT") if hasattr(os, "getenv") else None) or "."
    return Board(root)


def soft_reset():
    # boot.py runs again after a soft reset (Ctrl-D, or mpremote entering the raw REPL), with
    # no bootloader in between: True then
    return get().reset_cause() == "soft_reset"


class Base:
    # What both boards share. A board provides _join(ssid, password, ifconfig, ap) -> bool
    # (awaitable) and _reset_cause(), what the chip says.
    backoff_ms = 1000  # first wait after a failed join; doubles up to backoff_max_ms
    backoff_max_ms = 60000
    chip = None  # a board that is no particular chip (the unix simulation's default)
    carried = None  # the reset cause the firmware's own restart carried over (start.py)

    def __init__(self):
        self.log = Log("board")

    def reset_cause(self):
        return self.carried or self._reset_cause()

    async def connect(self, ssid, password, ifconfig=None, ap=None):
        delay = self.backoff_ms
        while not await self._join(ssid, password, ifconfig, ap):
            self.log.warning("network %s not joined, retry in %d ms" % (ssid, delay))
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, self.backoff_max_ms)
        self.log.info("network up, ip", self.ip())

    async def keep_time(self):
        # after a failed NTP attempt: again after 2 s, doubling to 5 min, until the clock is set
        delay = 2000
        while not self.time_set():
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, 300000)
            await self.sync_time()
            if self.time_set():
                self.log.info("clock set by NTP")

    def path(self, name):
        # the file name in root (config.json, the spool, ota.json, ...); an absolute name as is
        return name if name.startswith("/") else self.root.rstrip("/") + "/" + name

    def button(self, num):
        return self.pin(num, "in", True, pull_up=True)

    def led(self, num, invert=False):
        return None if num is None else self.pin(num, "out", invert, 0)

    def now_ms(self):
        return time.time_ns() // 1000000 + _EPOCH_MS

    def free_heap(self):
        return gc.mem_free()
