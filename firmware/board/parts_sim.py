# parts_sim: the simulated board's (sim.py) pins and sensors, stand-ins for what is not Python
# code on an ESP32's heap: machine.Pin and machine.ADC are C in its image, the dht and ds18x20
# drivers are frozen into it; and what only the simulation does (its files, its exit statuses).
# The ESP32 twin (tools/twin.py) has this module frozen in, as top-level parts_sim, for that
# reason: the simulation costs the heap no more than the ESP32 board (board/esp32.py) does.
#
# Frozen into the twin, this module's names are in its ROM: it uses none the firmware has
# (tests/twin/test_board.py checks), or the firmware would find those there where a board
# interns them. The simulated board (sim.py) spells what the firmware calls on these parts.
# It writes its files itself (replace()), as firmware's save_json is one of those names.
import json
import os

# How the simulated board's process ends (sim.py's reset(), deepsleep() and restart()); any
# other status is a crash
EXIT_RESET = 3  # restart at once, reset cause "hard_reset"
EXIT_DEEPSLEEP = 4  # restart after the ms in sleep.json, cause "deepsleep"
EXIT_SOFT_RESET = 5  # MicroPython starts over at once, cause "soft_reset"
LOOPBACK = "127.0.0.1"  # the simulated board's address


def say(line):
    # one write, as log.py does: print writes the newline on its own
    print(line + "\n", end="")


def replace(host, name, data):
    # the file name in the board's folder replaced whole: temp file, then rename
    path = host.path(name)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)


def board_file(host):
    return host._json("board.json")


def asleep(host, value):
    replace(host, "sleep.json", json.dumps(value).encode())


def rtc_memory(host, data, cold):
    # rtc.bin stands for the RTC memory: kept across deep sleep and resets, gone after a power
    # cut (cold: the supervisor's reset cause says one)
    if data is not None:
        replace(host, "rtc.bin", data)
        return None
    if cold:
        return b""
    try:
        with open(host.path("rtc.bin"), "rb") as f:
            return f.read()
    except OSError:
        return b""


def raw_temp(host):
    return int(made_up(host, "chip_raw", 100, 140))


def part_for(host, model, pin_no):
    # the sensor stand-in of a part on a pin: "adc:34", "dht:4", "ds18b20:5" in sensors.json
    return SimSensor(host, "%s:%d" % (model, pin_no))


def made_up(host, key, low, high):
    # the value in sensors.json, or a made-up one in [low, high)
    values = host._json("sensors.json")
    if key in values.get("fail", ()):
        raise OSError("simulated failure of " + key)
    if key in values:
        return values[key]
    host._seed = (host._seed * 1103515245 + 12345) & 0x7FFFFFFF
    return low + (high - low) * (host._seed >> 15) / 65536


class SimPin:
    # An output (default None) keeps its level in the board; an input reads inputs.json.
    def __init__(self, host, pin_no, invert, default, start=None):
        self._host = host
        self._num = pin_no
        self._invert = 1 if invert else 0
        self._default = default
        if default is None:
            self.value(start or 0)

    def value(self, v=None):
        b = self._host
        key = str(self._num)
        if v is None:
            if self._default is None:  # an output reads back its level
                return b._levels.get(key, 0) ^ self._invert
            return b._json("inputs.json").get(key, self._default) ^ self._invert
        if self._default is None:
            b._levels[key] = (1 if v else 0) ^ self._invert
            replace(b, "pins.json", json.dumps(b._levels).encode())


class SimSensor:
    # one stand-in for the ADC, DHT and DS18B20 drivers: what sensors.json has for key

    def __init__(self, host, key):
        self._host = host
        self._key = key
        self._t = self._h = None

    def read_u16(self):  # ADC
        return int(made_up(self._host, self._key, 8000, 56000))

    def measure(self):  # DHT
        r = made_up(self._host, self._key, 0, 1)
        if isinstance(r, list):
            self._t, self._h = r
        else:  # made up: r in [0, 1) spreads over plausible indoor values
            self._t, self._h = round(18 + 8 * r, 1), round(35 + 25 * r, 1)

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h

    def read(self):  # DS18B20, converted (sim.py)
        r = made_up(self._host, self._key, 15, 25)
        if isinstance(r, list):
            return [(rom, t) for rom, t in r]
        return [("28ff4a7c91160345", round(r, 2))]  # made up: the sample config.json's sensor
