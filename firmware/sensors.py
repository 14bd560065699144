# sensors: the "sensors" list of config.json, read through the board. Telemetry keys:
#   chip_temp {key, offset}            key: °C where the chip measures °C (S2, S3, C3, C6); the
#                                      classic ESP32 has an uncalibrated raw value only:
#                                      key_raw, and with offset (°C) key: (raw-32)/1.8+offset
#   adc {key, pin, atten=11, scale}    without scale, key: the raw read_u16() (0-65535); with
#                                      scale [in_min, in_max, out_min, out_max], key: the raw
#                                      value mapped linearly (not clamped) and key_raw: raw
#   dht11 / dht22 {pin, prefix=""}     prefix + "temperature" (°C), prefix + "humidity" (%)
#   ds18b20 {pin, key, rom}            key: °C of the sensor with that ROM on the 1-Wire bus,
#                                      or of the first one found without a rom
#   sim {key, min, max, step}          key: walks from min to max and back by step (default a
#                                      tenth of the range); for the unix port
# A sensor that fails is reported under its name: its key, or prefix + type for a DHT
# ("air_dht22"); the others are still read.
import asyncio

from .log import Log

_log = Log("sensors")


# Each sensor reads its `input` (the board, an ADC, a DHT, a 1-Wire bus) and keeps its
# settings in attributes whose names a board holds in ROM: each name of their own would be one
# more that every board interns in RAM.


class ChipTemp:
    def __init__(self, board, cfg):
        self.name = cfg["key"]
        self.input = board
        self.offset = cfg.get("offset")

    async def read(self, values):
        t = self.input.chip_temperature()
        if t is None:
            raw = self.input.raw_temperature()
            values[self.name + "_raw"] = raw
            if self.offset is None:
                return
            t = (raw - 32) / 1.8 + self.offset
        values[self.name] = round(t, 1)


class Adc:
    def __init__(self, board, cfg):
        self.name = cfg["key"]
        self.input = board.adc(cfg["pin"], cfg.get("atten", 11))
        self.scale = cfg.get("scale")
        self.raw = self.name + "_raw"

    async def read(self, values):
        raw = self.input.read_u16()
        s = self.scale
        if s is None:
            values[self.name] = raw
            return
        values[self.name] = round(scale(raw, s), 2)
        values[self.raw] = raw


def scale(x, s):
    in_min, in_max, out_min, out_max = s
    return out_min + (x - in_min) * (out_max - out_min) / (in_max - in_min)


class Dht:
    def __init__(self, board, cfg):
        prefix = cfg.get("prefix", "")
        self.name = prefix + cfg["type"]
        self.keys = (prefix + "temperature", prefix + "humidity")
        self.input = board.dht(cfg["pin"], cfg["type"])

    async def read(self, values):
        d = self.input
        d.measure()
        values[self.keys[0]] = d.temperature()
        values[self.keys[1]] = d.humidity()


class Ds18b20:
    def __init__(self, board, cfg):
        self.name = cfg["key"]
        self.pin = cfg["pin"]
        rom = cfg.get("rom")
        self.rom = rom.lower() if rom else None
        self.input = board.ds18b20(cfg["pin"])

    async def read(self, values):
        bus = self.input
        bus.convert()
        await asyncio.sleep_ms(bus.wait_ms)
        for rom, t in bus.read():
            if self.rom is None or rom == self.rom:
                values[self.name] = round(t, 2)
                return
        raise OSError("no DS18B20 %s on pin %d" % (self.rom or "found", self.pin))


class Sim:
    def __init__(self, board, cfg):
        self.name = cfg["key"]
        self.min = cfg["min"]
        self.max = cfg["max"]
        self.step = cfg.get("step") or (self.max - self.min) / 10
        self.value = self.min

    async def read(self, values):
        values[self.name] = self.value
        v = self.value + self.step
        if not self.min < v < self.max:  # stop at the end, turn round on the next read
            v = min(max(v, self.min), self.max)
            self.step = -self.step
        self.value = v


TYPES = {
    "chip_temp": ChipTemp,
    "adc": Adc,
    "dht11": Dht,
    "dht22": Dht,
    "ds18b20": Ds18b20,
    "sim": Sim,
}


def build(board, configs):
    # configs as checked by firmware/config.py; an unknown type is a bug there: KeyError
    return [TYPES[c["type"]](board, c) for c in configs]


_errors = {}  # returned by read_all, reused: valid until the next call


async def read_all(sensors, values, log=_log.error):
    """Read every sensor into values; return {name: message} for those that failed."""
    _errors.clear()
    for s in sensors:
        try:
            await s.read(values)
        except Exception as e:  # one broken sensor must not silence the others
            msg = str(e) or type(e).__name__
            log(s.name + ":", msg)
            _errors[s.name] = msg
    return _errors
