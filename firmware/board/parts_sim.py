# parts_sim: the simulated board's (sim.py) pins and sensors, stand-ins for what is not Python
# code on an ESP32's heap: machine.Pin and machine.ADC are C in its image, the dht and ds18x20
# drivers are frozen into it. The ESP32 twin (tools/twin.py) has this module frozen in, as
# top-level parts_sim, for that reason: the simulation costs the heap no more than the ESP32
# board (board/esp32.py) does.


# Frozen into the twin, this module's names are in its ROM: it uses none the firmware has
# (tests/twin/test_board.py checks), or the firmware would find those there where a board
# interns them. The simulated board (sim.py) spells what the firmware calls on these parts.


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
            b._keep_levels()


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
