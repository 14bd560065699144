# parts_sim: the simulated board's (sim.py) pins and sensors, stand-ins for what is not Python
# code on an ESP32's heap: machine.Pin and machine.ADC are C in its image, the dht and ds18x20
# drivers are frozen into it. The ESP32 twin (tools/twin.py) has this module frozen in, as
# top-level parts_sim, for that reason: the simulation costs the heap no more than the ESP32
# board (board/esp32.py) does.


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
        if v is None:
            return b._level(self._num, self._default) ^ self._invert
        if self._default is None:
            b._drive(self._num, (1 if v else 0) ^ self._invert)


class SimSensor:
    # one stand-in for the ADC, DHT and DS18B20 drivers: what sensors.json has for key
    wait_ms = 0  # a DS18B20 conversion takes no time here

    def __init__(self, board, key):
        self._board = board
        self._key = key
        self._t = self._h = None

    def read_u16(self):  # ADC
        return int(self._board._reading(self._key, 8000, 56000))

    def measure(self):  # DHT
        r = self._board._reading(self._key, 0, 1)
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
        r = self._board._reading(self._key, 15, 25)
        if isinstance(r, list):
            return [(rom, t) for rom, t in r]
        return [("28ff4a7c91160345", round(r, 2))]  # made up: the sample config.json's sensor
