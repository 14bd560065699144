# parts_sim: the simulated board's (sim.py) pins and sensors, stand-ins for what is not Python
# code on an ESP32's heap: machine.Pin and machine.ADC are C in its image, the dht and ds18x20
# drivers are frozen into it. The ESP32 twin (tools/twin.py) has this module frozen in, as
# top-level parts_sim, for that reason: the simulation costs the heap no more than the ESP32
# board (board/esp32.py) does.


from firmware import save_json


def reading(board, key, lo, hi):
    # the value in sensors.json, or a made-up one in [lo, hi)
    values = board._load("sensors.json")
    if key in values.get("fail", ()):
        raise OSError("simulated failure of " + key)
    if key in values:
        return values[key]
    board._seed = (board._seed * 1103515245 + 12345) & 0x7FFFFFFF
    return lo + (hi - lo) * (board._seed >> 15) / 65536


class SimPin:
    # An output (default None) keeps its level in the board; an input reads inputs.json.
    def __init__(self, board, num, invert, default, initial=None):
        self._board = board
        self._num = num
        self._invert = 1 if invert else 0
        self._default = default
        if default is None:
            self.value(initial or 0)

    def value(self, v=None):
        b = self._board
        key = str(self._num)
        if v is None:
            if self._default is None:  # an output reads back its level
                return b._levels.get(key, 0) ^ self._invert
            return b._load("inputs.json").get(key, self._default) ^ self._invert
        if self._default is None:
            b._levels[key] = (1 if v else 0) ^ self._invert
            save_json(b.path("pins.json"), b._levels)


class SimSensor:
    # one stand-in for the ADC, DHT and DS18B20 drivers: what sensors.json has for key
    wait_ms = 0  # a DS18B20 conversion takes no time here

    def __init__(self, board, key):
        self._board = board
        self._key = key
        self._t = self._h = None

    def read_u16(self):  # ADC
        return int(reading(self._board, self._key, 8000, 56000))

    def measure(self):  # DHT
        r = reading(self._board, self._key, 0, 1)
        if isinstance(r, list):
            self._t, self._h = r
        else:  # made up: r in [0, 1) spreads over plausible indoor values
            self._t, self._h = round(18 + 8 * r, 1), round(35 + 25 * r, 1)

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h

    def convert(self):  # DS18B20
        pass

    def read(self):
        r = reading(self._board, self._key, 15, 25)
        if isinstance(r, list):
            return [(rom, t) for rom, t in r]
        return [("28ff4a7c91160345", round(r, 2))]  # made up: the sample config.json's sensor
