# sim: the board of the unix port. Hardware is files in root, so tests and tools/simdevice.py
# (other processes) can watch and steer the device:
#   pins.json      written by the board on every output change: {"26": 1}, pin levels after
#                  invert (what a meter on the pin would show)
#   inputs.json    read by the board: input pin levels {"27": 1}, default 0 (1 for a button,
#                  which has a pull-up: {"0": 0} holds it pressed)
#   sensors.json   read by the board: {"adc:34": 2048, "chip_temp": 41.5, "dht:4": [21.5, 40],
#                  "ds18b20:5": [["28ff4a7c91160345", 19.5]], "fail": ["dht:4"]}; a key in
#                  "fail" makes that read raise OSError; absent keys get plausible made-up
#                  values (a 1-Wire bus: one DS18B20, the one the sample config.json names)
#   network.json   read by the board: {"up": false} keeps the network down, {"clock": false}
#                  leaves the clock unset, {"ntp": false} keeps NTP from answering; all
#                  default true
#   reset_cause    written by the supervisor before each start, default "power_on"
#   board.json     read at start: {"chip": "esp32"} makes the board that chip (its pins, its
#                  chip temperature: raw only on the classic ESP32; its clock unset until NTP
#                  answers), as an ESP32 reports it; without it the simulation has no chip's
#                  limits and the host's clock
#   sleep.json     written by deepsleep(): {"ms": 60000}
#   rtc.bin        the RTC memory (memory()): read back unless the reset cause is power_on
#   ota_0.bin, ota_1.bin, otadata.bin   the app partitions and otadata (partition_sim.py),
#                  created on first use as a serial flash leaves them; every process start is a
#                  boot: the bootloader's slot choice and rollback run then, except after a
#                  soft reset (reset_cause soft_reset), which goes on with the slot in running
#   running        written at each boot: the app partition the bootloader chose (RAM on a
#                  real board: a supervisor removes it at a power on or a hard reset)
# Files are replaced whole (temp file, then rename), so a reader never sees half of one; other
# processes should write the files the board reads the same way.
# reset(), deepsleep() and restart() end the process with parts_sim's EXIT_* statuses.
#
# What only the simulation needs is in parts_sim and partition_sim, and the names this module
# keeps for its own are theirs where it can (booted, bootloader ...): the ESP32 twin has those
# frozen in, so that the simulated board costs the heap no more than board/esp32.py does.
import binascii
import json
import sys

from . import LED_PIN, Base


class Board(Base):
    name = "unix-sim"

    def __init__(self, root="."):
        super().__init__()
        self.root = root
        self._levels = {}  # output pin levels, as in pins.json
        self.booted = None  # the app slot the simulated bootloader chose
        self._seed = 12345  # the made-up sensor values are the same on every run
        self.chip = _part("parts_sim").board_file(self).get("chip")
        self.ntp = self.chip is None  # a chip's clock starts at 2000-01-01 (ports/esp32/main.c)

    @property
    def partition(self):
        self.bootloader()
        return flash().Partition

    def bootloader(self):
        # the simulated bootloader chooses the app partition at its first use in a process
        soft = self.booted is None and self._reset_cause() == "soft_reset"
        self.booted = flash().switch_on(self.root, self.booted, soft)

    def _json(self, name):
        try:
            with open(self.path(name)) as f:
                return json.load(f)
        except OSError:  # absent: the defaults
            return {}

    # --- pins

    def pin(self, num, direction, invert=False, initial=None, pull_up=False):
        pin = _part("parts_sim").SimPin
        if direction == "out":
            return pin(self, num, invert, None, initial)
        return pin(self, num, invert, 1 if pull_up else 0)

    def signal_error(self, pin=LED_PIN, invert=False):
        self.led(pin, invert).value(1)  # a real board blinks it; lit is enough to see here
        _part("parts_sim").say("board: error signalled on the LED (pin %d)" % pin)

    # --- sensors

    def adc(self, pin, atten_db):
        return _part("parts_sim").part_for(self, "adc", pin)

    def chip_temperature(self):
        if self.chip != "esp32":  # the classic ESP32 has only the raw register
            return _part("parts_sim").made_up(self, "chip_temp", 40, 50)

    def raw_temperature(self):
        if self.chip == "esp32":
            return _part("parts_sim").raw_temp(self)

    def dht(self, pin, kind):
        return _part("parts_sim").part_for(self, "dht", pin)

    def ds18b20(self, pin):
        s = _part("parts_sim").part_for(self, "ds18b20", pin)
        s.wait_ms, s.convert = 0, lambda: None  # a conversion takes no time here
        return s

    # --- network and time

    def isconnected(self):
        return self._json("network.json").get("up", True)

    async def _join(self, ssid, password, ifconfig=None, ap=None):
        return self.isconnected()

    def ip(self):
        return _part("parts_sim").LOOPBACK

    def mac(self):
        return ":".join("%02x" % b for b in b"\x02\x00" + binascii.unhexlify(self.unique_id()))

    def unique_id(self):
        # the folder's CRC: another folder, another device
        return binascii.hexlify(binascii.crc32(self.root.encode()).to_bytes(4, "big")).decode()

    async def sync_time(self):
        if self._json("network.json").get("ntp", True):
            self.ntp = True
        else:
            self.log.warning("ntp:", repr(OSError(110)))  # ETIMEDOUT, as ntptime raises it

    def time_set(self):
        return self.ntp and self._json("network.json").get("clock", True)

    # --- power

    def reset(self):
        p = _part("parts_sim")
        p.say("board: reset")
        sys.exit(p.EXIT_RESET)

    def restart(self):
        # a soft reset goes on with the partition this boot's bootloader chose: a board's
        # always runs, before MicroPython; the simulated one when asked, so now
        self.bootloader()
        p = _part("parts_sim")
        p.say("board: soft reset")
        sys.exit(p.EXIT_SOFT_RESET)

    def deepsleep(self, ms):
        p = _part("parts_sim")
        p.asleep(self, {"ms": ms})
        p.say("board: deep sleep for %d ms" % ms)
        sys.exit(p.EXIT_DEEPSLEEP)

    def memory(self, data=None):
        return _part("parts_sim").rtc_memory(self, data, self._reset_cause() == "power_on")

    def _reset_cause(self):
        try:
            with open(self.path("reset_cause")) as f:
                return f.read().strip() or "unknown"
        except OSError:
            return "power_on"


def flash():
    return _part("partition_sim")


def _part(name):
    # a simulated part of what is C or frozen in an ESP32 image (the flash, pins, sensors):
    # frozen into the ESP32 twin as a top-level module (partition_sim.py says why), else this
    # package's
    try:
        return __import__(name)
    except ImportError:
        return __import__("firmware.board." + name, None, None, ("_",))
