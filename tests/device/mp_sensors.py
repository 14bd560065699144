# firmware/sensors.py on the unix port with the simulated board: every sensor type from its
# config, the telemetry keys each one reports, scaling, a failing sensor reported without
# stopping the others, and the DS18B20 conversion time awaited (virtual clock) not blocked.
import asyncio
import binascii
import json
import os
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import fakes  # noqa: E402

from firmware import sensors  # noqa: E402
from firmware.board import sim  # noqa: E402

_dir = "/tmp/coapboard-mp_sensors-" + binascii.hexlify(os.urandom(4)).decode()


def _remove(path, rm=os.remove):
    try:
        rm(path)
    except OSError:  # not there
        pass


def _cleanup():
    _remove(_dir + "/sensors.json")
    _remove(_dir, os.rmdir)


sys.atexit(_cleanup)


def board(values=None):
    # a simulated board whose sensors.json holds values (None: it makes readings up)
    _cleanup()
    os.mkdir(_dir)
    if values is not None:
        with open(_dir + "/sensors.json", "w") as f:
            json.dump(values, f)
    return sim.Board(_dir)


def read(sensor_list, values=None, log=None):
    values = {} if values is None else values
    errors = asyncio.run(sensors.read_all(sensor_list, values, log or (lambda *a: None)))
    return values, dict(errors)


CONFIG = [
    {"type": "chip_temp", "key": "chip"},
    {"type": "adc", "key": "soil", "pin": 34, "scale": [0, 65535, 0, 100], "atten": 11},
    {"type": "adc", "key": "light", "pin": 35},
    {"type": "dht22", "pin": 4, "prefix": "air_"},
    {"type": "dht11", "pin": 16},
    {"type": "ds18b20", "key": "water", "pin": 5},
    {"type": "sim", "key": "level", "min": 0, "max": 100, "step": 5},
]
VALUES = {
    "chip_temp": 41.26,
    "adc:34": 16384,
    "adc:35": 1000,
    "dht:4": [21.5, 40.1],
    "dht:16": [19, 55],
    "ds18b20:5": [["28ff4a7c91160345", 19.4375]],
}


def test_every_type_reports_its_keys():
    values, errors = read(sensors.build(board(VALUES), CONFIG))
    assert errors == {}
    assert values == {
        "chip": 41.3,
        "soil": 25.0,
        "soil_raw": 16384,
        "light": 1000,
        "air_temperature": 21.5,
        "air_humidity": 40.1,
        "temperature": 19,
        "humidity": 55,
        "water": 19.44,
        "level": 0,
    }


def test_scale_maps_linearly_both_ways_and_does_not_clamp():
    assert sensors.scale(32768, [0, 65536, 0, 100]) == 50
    assert sensors.scale(20000, [60000, 20000, 0, 100]) == 100  # capacitive: wetter reads lower
    assert sensors.scale(0, [10000, 20000, 0, 100]) == -100
    b = board({"adc:34": 40000})
    s = sensors.build(b, [{"type": "adc", "key": "soil", "pin": 34, "scale": [0, 3, 0, 1]}])
    assert read(s)[0] == {"soil": 13333.33, "soil_raw": 40000}


def test_a_failing_sensor_is_logged_and_reported_and_the_others_still_read():
    b = board(dict(VALUES, fail=["dht:4", "ds18b20:5"]))
    logged = []
    values, errors = read(sensors.build(b, CONFIG), log=lambda *a: logged.append(a))
    assert errors == {
        "air_dht22": "simulated failure of dht:4",
        "water": "simulated failure of ds18b20:5",
    }
    assert sorted(logged) == [
        ("air_dht22:", "simulated failure of dht:4"),
        ("water:", "simulated failure of ds18b20:5"),
    ]
    assert "air_temperature" not in values and "water" not in values
    assert values["chip"] == 41.3 and values["humidity"] == 55 and values["level"] == 0


def test_errors_are_cleared_once_the_sensor_reads_again_and_values_is_reused():
    b = board(dict(VALUES, fail=["chip_temp"]))
    s = sensors.build(b, CONFIG[:1])
    values = {}
    assert read(s, values)[1] == {"chip": "simulated failure of chip_temp"}
    board(VALUES)
    v, errors = read(s, values)
    assert v is values and errors == {} and values == {"chip": 41.3}


def test_an_error_without_a_message_is_named_by_its_type():
    class Broken:
        name = "x"

        async def read(self, values):
            raise ValueError

    assert read([Broken()])[1] == {"x": "ValueError"}


def test_ds18b20_picks_its_rom_and_says_when_it_is_missing():
    b = board({"ds18b20:5": [["28aaaaaaaaaaaaaa", 18.0], ["28ffffffffffffff", 22.5]]})
    s = sensors.build(
        b,
        [
            {"type": "ds18b20", "key": "first", "pin": 5},
            {"type": "ds18b20", "key": "second", "pin": 5, "rom": "28FFFFFFFFFFFFFF"},
            {"type": "ds18b20", "key": "gone", "pin": 5, "rom": "28bbbbbbbbbbbbbb"},
            {"type": "ds18b20", "key": "empty", "pin": 6},
        ],
    )
    board({"ds18b20:5": [["28aaaaaaaaaaaaaa", 18.0], ["28ffffffffffffff", 22.5]], "ds18b20:6": []})
    values, errors = read(s)
    assert values == {"first": 18.0, "second": 22.5}
    assert errors == {
        "gone": "no DS18B20 28bbbbbbbbbbbbbb on pin 5",
        "empty": "no DS18B20 found on pin 6",
    }


def test_ds18b20_conversion_time_is_awaited_so_other_tasks_run():
    clock = fakes.install()
    events = []

    class Bus:
        wait_ms = 750

        def convert(self):
            events.append(("convert", clock.now()))

        def read(self):
            events.append(("read", clock.now()))
            return [("28aaaaaaaaaaaaaa", 20.0)]

    class Board:
        def ds18b20(self, pin):
            return Bus()

    async def ticker():
        for _ in range(3):
            await asyncio.sleep_ms(200)
            events.append(("tick", clock.now()))

    async def main():
        asyncio.create_task(ticker())
        s = sensors.build(Board(), [{"type": "ds18b20", "key": "t", "pin": 5}])
        return await sensors.read_all(s, {})

    assert asyncio.run(main()) == {}
    kinds = [e[0] for e in events]
    assert kinds == ["convert", "tick", "tick", "tick", "read"], events
    assert 750 <= events[-1][1] < 800


def test_sim_sensor_walks_between_min_and_max():
    s = sensors.build(board(), [{"type": "sim", "key": "v", "min": 0, "max": 100, "step": 30}])
    seen = [read(s)[0]["v"] for _ in range(10)]
    assert seen == [0, 30, 60, 90, 100, 70, 40, 10, 0, 30]
    s = sensors.build(board(), [{"type": "sim", "key": "v", "min": 10, "max": 20}])
    assert [read(s)[0]["v"] for _ in range(3)] == [10, 11, 12]


def test_made_up_readings_without_sensors_json_are_numbers():
    values, errors = read(sensors.build(board(), CONFIG))
    assert errors == {} and len(values) == 10
    assert all(isinstance(v, (int, float)) for v in values.values())
    assert 0 <= values["light"] <= 65535 and 0 <= values["soil"] <= 100
