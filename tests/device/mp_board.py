# The simulated board (firmware/board/sim.py) on the unix port: pins, inputs, sensors and the
# network are files in its root that other processes read and write; Wi-Fi joins back off
# exponentially (on a virtual clock). reset() and deepsleep() end the process, so
# tests/test_simdevice.py checks those through the supervisor.
import asyncio
import json
import os
import sys
import time

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import fakes  # noqa: E402

from firmware import board as boards  # noqa: E402
from firmware.board import sim  # noqa: E402

_dir = fakes.scratch_dir("mp_board")


def scratch():
    # an empty root for one case
    fakes.empty(_dir)
    return sim.Board(_dir)


def write(board, name, value):
    with open(board.root + "/" + name, "w") as f:
        json.dump(value, f)


def read(board, name):
    with open(board.root + "/" + name) as f:
        return json.load(f)


class Recorder:
    def __init__(self):
        self.lines = []

    def _add(self, *args):
        self.lines.append(" ".join(str(a) for a in args))

    info = warning = error = debug = _add


def test_get_returns_the_sim_board_for_the_given_or_configured_root():
    b = boards.get("/some/where")
    assert (b.name, b.root) == ("unix-sim", "/some/where")
    os.putenv("COAPBOARD_ROOT", "/from/env")
    try:
        assert boards.get().root == "/from/env"
    finally:
        os.unsetenv("COAPBOARD_ROOT")
    assert boards.get().root == "."


def test_outputs_start_at_initial_and_every_change_lands_in_pins_json():
    b = scratch()
    pump = b.pin(26, "out", initial=1)
    assert read(b, "pins.json") == {"26": 1}
    fan = b.pin(27, "out", invert=True, initial=0)
    assert read(b, "pins.json") == {"26": 1, "27": 1}  # inverted: off is a high level
    pump.value(0)
    fan.value(1)
    assert read(b, "pins.json") == {"26": 0, "27": 0}
    assert (pump.value(), fan.value()) == (0, 1)
    b.pin(25, "out")
    assert read(b, "pins.json")["25"] == 0


def test_inputs_read_inputs_json_each_time():
    b = scratch()
    door = b.pin(35, "in")
    inverted = b.pin(34, "in", invert=True)
    assert (door.value(), inverted.value()) == (0, 1)
    write(b, "inputs.json", {"35": 1, "34": 1})
    assert (door.value(), inverted.value()) == (1, 0)
    door.value(0)  # an input ignores writes
    assert door.value() == 1


def test_button_has_a_pull_up_and_reads_1_while_held_low():
    b = scratch()
    button = b.button(0)
    assert button.value() == 0
    write(b, "inputs.json", {"0": 0})
    assert button.value() == 1


def test_led_starts_off_and_none_without_a_pin():
    b = scratch()
    assert b.led(None) is None
    led = b.led(2, True)
    assert (led.value(), read(b, "pins.json")) == (0, {"2": 1})
    led.value(1)
    assert read(b, "pins.json") == {"2": 0}


def test_sensor_reads_come_from_sensors_json():
    b = scratch()
    write(
        b,
        "sensors.json",
        {"adc:34": 2048, "chip_temp": 41.5, "dht:4": [21.5, 40], "ds18b20:5": [["28aa", 19.5]]},
    )
    assert b.adc(34, 11).read_u16() == 2048
    assert b.chip_temperature() == 41.5
    d = b.dht(4, "dht22")
    d.measure()
    assert (d.temperature(), d.humidity()) == (21.5, 40)
    bus = b.ds18b20(5)
    bus.convert()
    assert (bus.wait_ms, bus.read()) == (0, [("28aa", 19.5)])


def test_a_failure_in_sensors_json_raises_oserror_for_that_sensor_only():
    b = scratch()
    write(b, "sensors.json", {"dht:4": [21.5, 40], "fail": ["dht:4", "chip_temp"]})
    for read_it in (b.dht(4, "dht11").measure, b.chip_temperature):
        try:
            read_it()
            raise AssertionError("no OSError")
        except OSError as e:
            assert "simulated failure" in str(e)
    d = b.dht(17, "dht11")
    d.measure()
    assert 18 <= d.temperature() <= 26


def test_made_up_values_are_plausible_and_the_same_on_every_run():
    first, second = [], []
    for out in (first, second):
        b = scratch()
        d = b.dht(4, "dht22")
        for _ in range(20):
            d.measure()
            out.append((b.adc(34, 11).read_u16(), b.chip_temperature(), d.temperature()))
            out.append((d.humidity(), b.ds18b20(5).read()))
    assert first == second
    assert len(set(r[0] for r in first[::2])) == 20  # they do vary
    for (raw, chip, t), (h, ds) in zip(first[::2], first[1::2]):
        assert 8000 <= raw < 56000 and isinstance(raw, int)
        assert 40 <= chip < 50 and 18 <= t <= 26 and 35 <= h <= 60
        assert len(ds) == 1 and len(ds[0][0]) == 16 and 15 <= ds[0][1] <= 25


def test_network_json_takes_the_network_down_and_unsets_the_clock():
    b = scratch()
    assert b.isconnected() and b.time_set()
    write(b, "network.json", {"up": False, "clock": False})
    assert not b.isconnected() and not b.time_set()


def test_a_chip_s_clock_is_unset_until_ntp_answers_as_on_an_esp32():
    b = scratch()
    write(b, "board.json", {"chip": "esp32s3"})
    b = sim.Board(b.root)
    b.log = Recorder()
    assert not b.time_set()  # 2000-01-01 after a power-on (ports/esp32/main.c)
    write(b, "network.json", {"ntp": False})
    asyncio.run(b.sync_time())
    assert not b.time_set() and b.log.lines[-1].startswith("ntp: ")
    write(b, "network.json", {})
    asyncio.run(b.sync_time())
    assert b.time_set()


def test_connect_retries_with_exponential_backoff_until_the_network_is_up():
    clock = fakes.install()
    b = scratch()
    b.log = Recorder()
    b.backoff_max_ms = 4000
    write(b, "network.json", {"up": False})

    async def cable():
        await asyncio.sleep_ms(12000)
        write(b, "network.json", {"up": True})

    async def main():
        asyncio.create_task(cable())
        await b.connect("workshop", "pw")
        return clock.now()

    # joins tried at 0, 1000, 3000, 7000, 11000 (wait capped at 4000), then 15000: up
    done = asyncio.run(main())
    assert 15000 <= done < 15050, done
    waits = [line.split()[-2] for line in b.log.lines if "retry" in line]
    assert waits == ["1000", "2000", "4000", "4000", "4000"], b.log.lines
    assert b.log.lines[-1] == "network up, ip 127.0.0.1"


def test_connect_returns_at_once_when_the_network_is_up():
    clock = fakes.install()
    b = scratch()
    b.log = Recorder()
    asyncio.run(b.connect("workshop", "pw"))
    assert clock.now() < 50 and len(b.log.lines) == 1


def test_mac_and_unique_id_are_stable_and_differ_between_roots():
    a, a2, other = sim.Board("/dev-a"), sim.Board("/dev-a"), sim.Board("/dev-b")
    assert a.mac() == a2.mac() != other.mac()
    assert a.unique_id() == a2.unique_id() != other.unique_id()
    parts = a.mac().split(":")
    assert len(parts) == 6 and parts[0] == "02" and all(len(p) == 2 for p in parts)
    assert a.mac().replace(":", "").endswith(a.unique_id())
    assert a.ip() == "127.0.0.1"


def test_reset_cause_comes_from_the_supervisor_file():
    b = scratch()
    assert b.reset_cause() == "power_on"
    with open(b.root + "/reset_cause", "w") as f:
        f.write("deepsleep\n")
    assert b.reset_cause() == "deepsleep"


def test_now_ms_is_epoch_milliseconds_and_free_heap_counts_bytes():
    b = scratch()
    ms = b.now_ms()
    assert isinstance(ms, int) and abs(ms - time.time() * 1000) < 2000
    assert 0 < b.free_heap() <= 2 * 1024 * 1024


def test_signal_error_lights_the_led():
    b = scratch()
    b.signal_error()
    assert read(b, "pins.json") == {str(boards.LED_PIN): 1}


# --- firmware/board/esp32.py on fake hardware modules (put in sys.modules for this process):
# not the real drivers, but the board's own logic runs: pin levels, joins, causes, sensors.
# The names each fake offers are those of MicroPython v1.28.0's ESP32 port, cited per class;
# the values of the constants are the fakes' own (the board uses them by name only).

import machine  # noqa: E402


class FakePin(machine.PinBase):
    # machine.Pin(id, mode, pull, value=) with IN, OUT, PULL_UP (ports/esp32/machine_pin.c)
    IN, OUT, PULL_UP = 1, 3, 2
    made = []

    def __init__(self, num, mode=-1, pull=None, value=None):
        self.args = (num, mode, pull, value)
        self.level = value or 0
        FakePin.made.append(self)

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


class FakeADC:
    # machine.ADC(pin).atten(ATTN_*) (ports/esp32/machine_adc.c)
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 10, 12, 16, 21

    def __init__(self, pin):
        self.pin = pin

    def atten(self, a):
        self.att = a


class FakeMachine:
    # reset_cause() and its constants, reset, deepsleep, unique_id (ports/esp32/modmachine.c)
    Pin = FakePin
    Signal = machine.Signal
    ADC = FakeADC
    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
    cause = 3
    calls = []

    @staticmethod
    def reset_cause():
        return FakeMachine.cause

    @staticmethod
    def unique_id():
        return b"\x24\x0a\xc4\x01\x02\x03"

    @staticmethod
    def reset():
        FakeMachine.calls.append("reset")

    @staticmethod
    def deepsleep(ms):
        FakeMachine.calls.append(("deepsleep", ms))

    @staticmethod
    def soft_reset():
        FakeMachine.calls.append("soft_reset")

    rtc_memory = b""

    class RTC:
        # memory([data]): up to 2 KB kept across deep sleep (ports/esp32/machine_rtc.c:60)
        def memory(self, data=None):
            if data is None:
                return FakeMachine.rtc_memory
            FakeMachine.rtc_memory = bytes(data)


class FakeWLAN:
    # network.WLAN(STA_IF): active, connect, isconnected, ifconfig, config("mac")
    # (ports/esp32/network_wlan.c)
    refusals = 0  # connect() calls that do not join

    def __init__(self, iface):
        self.calls = []
        self.start_channel = self.channel = None

    def active(self, on):
        self.calls.append(("active", on))

    def isconnected(self):
        return self.calls.count("connect") > self.refusals

    def connect(self, ssid, password, bssid=None):
        self.calls.append("connect")
        self.bssid = bssid
        self.channel = 6  # where the network is

    def scan(self):
        # (ssid, bssid, channel, RSSI, security, hidden): the network's two access points
        return [
            (b"workshop", b"\x0a\x0b\x0c\x0d\x0e\x01", 6, -71, 3, False),
            (b"workshop", b"\x0a\x0b\x0c\x0d\x0e\x02", 6, -48, 3, False),
            (b"workshop", b"\x0a\x0b\x0c\x0d\x0e\x03", 11, -40, 3, False),
            (b"neighbour", b"\x0a\x0b\x0c\x0d\x0e\x04", 6, -30, 3, False),
        ]

    def disconnect(self):
        self.calls.append("disconnect")

    def ifconfig(self, static=None):
        if static is not None:
            self.calls.append(("ifconfig", static))
            return None
        return ("192.168.1.7", "255.255.255.0", "192.168.1.1", "192.168.1.1")

    def config(self, key=None, channel=None):
        # STA: channel= is where the scan starts; config("channel") the channel joined
        if channel is not None:
            self.start_channel = channel
            return None
        return {"mac": b"\x24\x0a\xc4\x01\x02\xfe", "channel": self.channel}[key]


class FakeNetwork:
    STA_IF = 0
    WLAN = FakeWLAN


class FakeEsp32:
    # the classic ESP32's esp32 module: raw_temperature() only (ports/esp32/modesp32.c)
    @staticmethod
    def raw_temperature():
        return 113  # °F, like the classic ESP32


class FakeDS18X20:
    # ds18x20.DS18X20(onewire.OneWire(pin)): scan, convert_temp, read_temp (micropython-lib,
    # micropython/drivers/sensor/ds18x20)
    def __init__(self, ow):
        self.pin = ow.pin
        self.converted = 0

    def scan(self):
        return [bytearray(b"\x28\xff\x4a\x7c\x91\x16\x03\x45")]

    def convert_temp(self):
        self.converted += 1

    def read_temp(self, rom):
        return 21.5


class FakeOneWire:
    def __init__(self, pin):
        self.pin = pin


class FakeDht:
    DHT11 = DHT22 = FakeOneWire


class OneWireModule:
    OneWire = FakeOneWire


class DS18X20Module:
    DS18X20 = FakeDS18X20


def esp32_board():
    sys.modules.update(
        machine=FakeMachine,
        network=FakeNetwork,
        esp32=FakeEsp32,
        dht=FakeDht,
        onewire=OneWireModule,
        ds18x20=DS18X20Module,
        ntptime=fakes.Ntptime(),
    )
    from firmware.board import esp32

    b = esp32.Board()
    b.log = Recorder()
    return b


def test_esp32_outputs_start_at_their_level_and_invert_through_signal():
    b = esp32_board()
    relay = b.pin(26, "out", invert=True, initial=1)
    pin = FakePin.made[-1]
    assert (pin.args, relay.value()) == ((26, FakePin.OUT, None, 0), 1)
    relay.value(0)
    assert pin.level == 1
    b.pin(27, "out", initial=1)
    b.pin(25, "out")
    b.pin(35, "in")
    assert [p.args for p in FakePin.made[-3:]] == [
        (27, FakePin.OUT, None, 1),
        (25, FakePin.OUT, None, None),
        (35, FakePin.IN, None, None),
    ]
    button = b.button(0)
    assert FakePin.made[-1].args == (0, FakePin.IN, FakePin.PULL_UP, None)
    assert button.value() == 1  # level 0: pressed


def test_esp32_join_gives_each_attempt_its_time_then_backs_off():
    clock = fakes.install()
    b = esp32_board()
    b._wlan.refusals = 2
    asyncio.run(b.connect("workshop", "pw"))
    # two attempts of JOIN_MS, waits of 1000 and 2000 ms, then joined at the first poll (20)
    t = clock.now()
    assert 2 * 20000 + 3000 + 20 <= t < 2 * 20000 + 3000 + 100, t
    calls = [c for c in b._wlan.calls if c in ("connect", "disconnect")]
    assert calls == ["connect", "disconnect", "connect", "disconnect", "connect"]
    assert b.log.lines[-1] == "network up, ip 192.168.1.7"


def test_esp32_rejoin_after_deep_sleep_static_address_and_access_point_then_radio_off():
    fakes.install()
    static = ["192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1"]
    ap = {}  # after a power on: the join learns the access point, once
    b = esp32_board()
    asyncio.run(b.connect("workshop", "pw", static, ap))
    w = b._wlan
    assert ("ifconfig", tuple(static)) in w.calls  # set before connect: no DHCP
    assert w.bssid is None and ap == {"ch": 6, "bssid": "0a0b0c0d0e02"}  # the strongest on 6
    b = esp32_board()  # the next wake: that access point directly, its channel scanned first
    asyncio.run(b.connect("workshop", "pw", static, ap))
    w = b._wlan
    assert w.start_channel == 6 and w.bssid == b"\x0a\x0b\x0c\x0d\x0e\x02"
    b.deepsleep(1000)
    assert w.calls[-1] == ("active", False) and FakeMachine.calls[-1] == ("deepsleep", 1000)


def test_esp32_an_access_point_that_is_gone_is_forgotten():
    clock = fakes.install()
    b = esp32_board()
    b._wlan.refusals = 1
    ap = {"ch": 1, "bssid": "0a0b0c0d0e09"}
    asyncio.run(b.connect("workshop", "pw", None, ap))
    assert b._wlan.bssid is None and ap == {"ch": 6, "bssid": "0a0b0c0d0e02"}
    assert clock.now() >= 20000


def test_esp32_memory_is_the_rtc_memory():
    fakes.install()
    b = esp32_board()
    b.memory(b'{"port": 50000}')
    assert b.memory() == b'{"port": 50000}' == FakeMachine.rtc_memory


def test_esp32_identity_time_power_and_sensors():
    fakes.install()
    b = esp32_board()
    assert (b.name, b.root) == ("esp32", "/")
    assert b.mac() == "24:0a:c4:01:02:fe" and b.unique_id() == "240ac4010203"
    assert (b.chip_temperature(), b.raw_temperature()) == (None, 113)
    assert b.reset_cause() == "watchdog"
    FakeMachine.cause = 0
    assert b.reset_cause() == "unknown"
    b.reset()
    b.deepsleep(5000)
    b.restart()
    assert FakeMachine.calls[-3:] == ["reset", ("deepsleep", 5000), "soft_reset"]
    FakeMachine.cause = FakeMachine.SOFT_RESET
    b.carried = "power_on"  # the firmware's own restart (start.py): the boot before it
    assert b.reset_cause() == "power_on" and esp32_board().reset_cause() == "soft_reset"
    assert b.adc(34, 2.5).att == FakeADC.ATTN_2_5DB
    assert b.dht(4, "dht22").pin.args[0] == 4
    bus = b.ds18b20(5)
    assert b.ds18b20(5) is bus and bus.wait_ms == 750
    bus.convert()
    assert bus.read() == [("28ff4a7c91160345", 21.5)]


def test_esp32_ntp_failures_of_either_kind_are_logged_and_retried_with_backoff():
    clock = fakes.install()
    b = esp32_board()
    ntp = sys.modules["ntptime"] = fakes.Ntptime("timeout", "short", "timeout")
    b.time_set = lambda: ntp.set
    asyncio.run(b.sync_time())  # one attempt, at boot: it times out
    assert not ntp.set and len(b.log.lines) == 1
    asyncio.run(b.keep_time())  # then again after 2, 4 and 8 s: a short reply, a timeout, ok
    assert ntp.set and 14000 <= clock.now() < 14100
    got = [line.split(":")[0] for line in b.log.lines[1:]]
    assert got == ["ntp", "ntp", "clock set by NTP"], b.log.lines


def test_esp32_chip_temperature_is_celsius_only_where_the_chip_gives_celsius():
    from firmware import sensors

    def read(chip, value, **cfg):
        b = esp32_board()
        mod = sys.modules["firmware.board.esp32"]
        mod.esp32 = fakes.Esp32Module(chip, value)
        try:
            values = {}
            cfg.update(type="chip_temp", key="chip")
            asyncio.run(sensors.build(b, [cfg])[0].read(values))
            return values
        finally:
            mod.esp32 = FakeEsp32

    assert read("esp32s3", 41.26) == {"chip": 41.3}
    assert read("esp32", 128) == {"chip_raw": 128}  # uncalibrated: no °C made up from it
    assert read("esp32", 113, offset=-20.5) == {"chip_raw": 113, "chip": 24.5}
