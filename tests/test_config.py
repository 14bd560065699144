# firmware/config.py under CPython (as the host provisioning tools use it): the repository's
# config.json validates, each bad config gets exactly the expected problems, load/save/mask.
import copy
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware import config  # noqa: E402

EXAMPLE = ROOT / "config.json"
BASE = {"wifi": {"ssid": "lab", "password": "pw"}, "server": {"host": "10.0.0.2"}, "token": "T0K"}


def cfg(**changes):
    c = copy.deepcopy(BASE)
    c.update(changes)
    return c


def gpio(*entries):
    return cfg(gpio=list(entries))


def sensors(*entries):
    return cfg(sensors=list(entries))


OUT = {"name": "relay", "pin": 26, "direction": "out"}
TOKEN = 'token: expected a ThingsBoard access token (or a "provisioning" section)'
KINDS = '"chip_temp", "adc", "dht11", "dht22", "ds18b20", "sim"'

BAD = [
    ("not an object", [], ["config: expected an object, got []"]),
    (
        "port string",
        cfg(server={"host": "h", "port": "abc"}),
        ['server.port: expected an integer 1-65535, got "abc"'],
    ),
    (
        "port 0",
        cfg(server={"host": "h", "port": 0}),
        ["server.port: expected an integer 1-65535, got 0"],
    ),
    (
        "port float",
        cfg(server={"host": "h", "port": 5683.0}),
        ["server.port: expected an integer 1-65535, got 5683.0"],
    ),
    (
        "port bool",
        cfg(server={"host": "h", "port": True}),
        ["server.port: expected an integer 1-65535, got true"],
    ),
    ("no host", cfg(server={"port": 5683}), ["server.host: missing, expected a non-empty string"]),
    ("no server", {"token": "T"}, ["server: missing, expected an object"]),
    ("server null", cfg(server=None), ["server: expected an object, got null"]),
    (
        "ca without coaps",
        cfg(server={"host": "h", "ca": "ca.der"}),
        ["server.ca: only used with coaps, expected coaps: true"],
    ),
    (
        "coaps with nothing to verify the server",
        cfg(server={"host": "h", "coaps": True}),
        [
            "server.ca: missing, expected the CA certificate file of the server (or server.pin,"
            " or a PSK): coaps never trusts an unverified server"
        ],
    ),
    (
        "coaps: ca and pin",
        cfg(server={"host": "h", "coaps": True, "ca": "ca.der", "pin": "s.der"}),
        ["server.pin: expected server.ca or server.pin, not both"],
    ),
    (
        "coaps: certificate without key, PSK identity without key",
        cfg(
            server={"host": "h", "coaps": True, "ca": "c", "client_cert": "d", "psk_identity": "i"}
        ),
        [
            "server.ca: not used with a PSK (server.psk_identity)",
            "server.client_cert: not used with a PSK (server.psk_identity)",
            "server.client_key: missing, expected it with server.client_cert",
            "server.psk_key: missing, expected it with server.psk_identity",
        ],
    ),
    (
        "DTLS keys without coaps",
        cfg(server={"host": "h", "client_cert": "d", "client_key": "k", "psk_key": "p"}),
        [
            "server.client_cert: only used with coaps, expected coaps: true",
            "server.client_key: only used with coaps, expected coaps: true",
            "server.psk_key: only used with coaps, expected coaps: true",
        ],
    ),
    (
        "no token and a client certificate without coaps",
        cfg(token="", server={"host": "h", "client_cert": "d", "client_key": "k"}),
        [
            "server.client_cert: only used with coaps, expected coaps: true",
            "server.client_key: only used with coaps, expected coaps: true",
            TOKEN,
        ],
    ),
    ("unknown top key", cfg(wfi={}), ['config: unknown key "wfi" (did you mean "wifi"?)']),
    (
        "unknown key hint",
        cfg(telemetry={"intervall": 5}),
        ['telemetry: unknown key "intervall" (did you mean "interval_s"?)'],
    ),
    (
        "transposed key",
        cfg(server={"host": "h", "prot": 1}),
        ['server: unknown key "prot" (did you mean "port"?)'],
    ),
    ("unknown key, no hint", cfg(color="red"), ['config: unknown key "color"']),
    ("no token", cfg(token=""), [TOKEN]),
    (
        "token not a string",
        cfg(token=123),
        ["token: expected a string, got a number (not shown: it may be a secret)"],
    ),
    (
        "provisioning without secret",
        cfg(token="", provisioning={"key": "k"}),
        ["provisioning.secret: missing, expected a non-empty string"],
    ),
    (
        "provisioning not an object",
        cfg(token="", provisioning="k"),
        ["provisioning: expected an object, got a string (not shown: it may be a secret)"],
    ),
    ("ssid not a string", cfg(wifi={"ssid": 5}), ["wifi.ssid: expected a string, got 5"]),
    (
        "claim duration",
        cfg(claim={"duration_ms": 0}),
        ["claim.duration_ms: expected an integer >= 1, got 0"],
    ),
    (
        "claim button on flash",
        cfg(claim={"button_pin": 6}),
        ["claim.button_pin: 6 is wired to the SPI flash on ESP32"],
    ),
    (
        "interval bool",
        cfg(telemetry={"interval_s": True}),
        ["telemetry.interval_s: expected a number of seconds 0.5-86400, got true"],
    ),
    (
        "spool too small",
        cfg(telemetry={"spool_bytes": 100}),
        ["telemetry.spool_bytes: expected an integer >= 1024, got 100"],
    ),
    (
        "log level",
        cfg(log_level="verbose"),
        ['log_level: expected one of "debug", "info", "warning", "error", got "verbose"'],
    ),
    (
        "empty version",
        cfg(firmware={"version": ""}),
        ['firmware.version: expected a non-empty string, got ""'],
    ),
    ("gpio not a list", cfg(gpio={"pin": 2}), ['gpio: expected a list, got {"pin": 2}']),
    ("gpio item not an object", gpio(5), ["gpio[0]: expected an object, got 5"]),
    (
        "output on input-only pin",
        gpio(dict(OUT, pin=34)),
        ["gpio[0].pin: 34 is input-only on ESP32, cannot be an output"],
    ),
    ("flash pin", gpio(dict(OUT, pin=9)), ["gpio[0].pin: 9 is wired to the SPI flash on ESP32"]),
    ("no such gpio", gpio(dict(OUT, pin=24)), ["gpio[0].pin: 24 is not a GPIO on ESP32"]),
    (
        "pin out of range",
        gpio(dict(OUT, pin=40)),
        ["gpio[0].pin: 40 is not a GPIO on ESP32"],
    ),
    (
        "pin as string",
        gpio(dict(OUT, pin="26")),
        ['gpio[0].pin: expected a GPIO number 0-48, got "26"'],
    ),
    (
        "direction",
        gpio(dict(OUT, direction="output")),
        ['gpio[0].direction: expected one of "in", "out", got "output"'],
    ),
    ("initial 2", gpio(dict(OUT, initial=2)), ["gpio[0].initial: expected one of 0, 1, got 2"]),
    (
        "initial true",
        gpio(dict(OUT, initial=True)),
        ["gpio[0].initial: expected one of 0, 1, got true"],
    ),
    (
        "initial on input",
        gpio(dict(OUT, direction="in", initial=1)),
        ["gpio[0].initial: only outputs have an initial value"],
    ),
    (
        "numeric name",
        gpio(dict(OUT, name="26")),
        ['gpio[0].name: expected a name, not a number, got "26"'],
    ),
    (
        "same name",
        gpio(OUT, dict(OUT, pin=27)),
        ['gpio[1].name: "relay" is already used by gpio[0]'],
    ),
    (
        "same pin",
        gpio(OUT, dict(OUT, name="fan")),
        ["gpio[1].pin: 26 is already used by gpio[0].pin"],
    ),
    (
        "led on input-only pin",
        cfg(led={"pin": 36}),
        ["led.pin: 36 is input-only on ESP32, cannot be an output"],
    ),
    (
        "led pin taken",
        cfg(gpio=[OUT], led={"pin": 26, "invert": True}),
        ["led.pin: 26 is already used by gpio[0].pin"],
    ),
    (
        "led without pin",
        cfg(led={"invert": True}),
        ["led.pin: missing, expected a GPIO number 0-48"],
    ),
    ("sensors not a list", cfg(sensors={}), ["sensors: expected a list, got {}"]),
    ("sensor not an object", sensors("adc"), ['sensors[0]: expected an object, got "adc"']),
    (
        "unknown sensor type reported alone",
        sensors({"type": "bmp280", "pin": 21, "x": 1}),
        ['sensors[0].type: expected one of %s, got "bmp280"' % KINDS],
    ),
    (
        "sensor without type",
        sensors({"key": "t"}),
        ["sensors[0].type: missing, expected one of %s" % KINDS],
    ),
    (
        "sensor without key",
        sensors({"type": "chip_temp"}),
        ["sensors[0].key: missing, expected a non-empty string"],
    ),
    (
        "key of another type",
        sensors({"type": "adc", "key": "v", "pin": 33, "rom": "x"}),
        ['sensors[0]: unknown key "rom"'],
    ),
    (
        "adc on ADC2",
        sensors({"type": "adc", "key": "v", "pin": 25}),
        ["sensors[0].pin: 25 is not an ADC1 pin on ESP32 (32-39); ADC2 fails while Wi-Fi is on"],
    ),
    (
        "adc atten",
        sensors({"type": "adc", "key": "v", "pin": 33, "atten": 3}),
        ["sensors[0].atten: expected one of 0, 2.5, 6, 11, got 3"],
    ),
    (
        "adc scale",
        sensors({"type": "adc", "key": "v", "pin": 33, "scale": [0, 0, 1, 2]}),
        [
            "sensors[0].scale: expected [in_min, in_max, out_min, out_max] with in_min != in_max,"
            " got [0, 0, 1, 2]"
        ],
    ),
    (
        "adc raw key taken",
        sensors(
            {"type": "adc", "key": "v", "pin": 33, "scale": [0, 1, 0, 1]},
            {"type": "sim", "key": "v_raw", "min": 0, "max": 1},
        ),
        ['sensors[1].key: telemetry key "v_raw" is already used by sensors[0]'],
    ),
    (
        "dht keys taken",
        sensors({"type": "chip_temp", "key": "temperature"}, {"type": "dht11", "pin": 4}),
        ['sensors[1].prefix: telemetry key "temperature" is already used by sensors[0]'],
    ),
    (
        "dht on input-only pin",
        sensors({"type": "dht22", "pin": 39}),
        ["sensors[0].pin: 39 is input-only on ESP32, cannot be an output"],
    ),
    (
        "ds18b20 rom",
        sensors({"type": "ds18b20", "key": "t", "pin": 4, "rom": "28ff"}),
        ['sensors[0].rom: expected 16 hex digits, got "28ff"'],
    ),
    (
        "shared 1-Wire bus needs roms",
        sensors(
            {"type": "ds18b20", "key": "t1", "pin": 4, "rom": "28ff4a7c91160345"},
            {"type": "ds18b20", "key": "t2", "pin": 4},
        ),
        ["sensors[1].rom: missing, expected 16 hex digits (several ds18b20 on pin 4)"],
    ),
    (
        "1-Wire bus on input-only pin",
        sensors({"type": "ds18b20", "key": "t", "pin": 34}),
        ["sensors[0].pin: 34 is input-only on ESP32, cannot be an output"],
    ),
    (
        "1-Wire bus on a gpio output",
        cfg(gpio=[OUT], sensors=[{"type": "ds18b20", "key": "t", "pin": 26}]),
        ["sensors[0].pin: 26 is already used by gpio[0].pin"],
    ),
    (
        "1-Wire bus on the led",
        cfg(led={"pin": 2}, sensors=[{"type": "ds18b20", "key": "t", "pin": 2}]),
        ["sensors[0].pin: 2 is already used by led.pin"],
    ),
    (
        "dht on a 1-Wire bus",
        sensors({"type": "ds18b20", "key": "t", "pin": 4}, {"type": "dht22", "pin": 4}),
        ["sensors[1].pin: 4 is already used by sensors[0].pin"],
    ),
    (
        "sim range",
        sensors({"type": "sim", "key": "s", "min": 5, "max": 5}),
        ["sensors[0].max: expected a number > min (5), got 5"],
    ),
    (
        "sim step",
        sensors({"type": "sim", "key": "s", "min": 0, "max": 1, "step": 0}),
        ["sensors[0].step: expected a number > 0, got 0"],
    ),
    (
        "sim min",
        sensors({"type": "sim", "key": "s", "min": "0", "max": 1}),
        ['sensors[0].min: expected a number, got "0"'],
    ),
    (
        "long values are cut",
        cfg(log_level="x" * 60),
        [
            'log_level: expected one of "debug", "info", "warning", "error", got "'
            + "x" * 36
            + "..."
        ],
    ),
]


@pytest.mark.parametrize("config_, want", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_problems(config_, want):
    assert config.validate(config_) == want


def test_ds18b20_sensors_share_a_1wire_pin():
    # one bus, several sensors told apart by ROM: the only pin two entries may share
    c = sensors(
        {"type": "ds18b20", "key": "t1", "pin": 4, "rom": "28ff4a7c91160345"},
        {"type": "ds18b20", "key": "t2", "pin": 4, "rom": "28ff4a7c91160346"},
    )
    assert config.validate(c) == []


def test_every_problem_is_reported_at_once():
    c = cfg(
        wifi={"ssid": ""},
        server={"host": "", "port": 70000},
        token="",
        gpio=[dict(OUT, pin=34), dict(OUT, pin=34, name="relay")],
        sensors=[
            {"type": "sim", "key": "k", "min": 1, "max": 0},
            {"type": "chip_temp", "key": "k"},
        ],
    )
    assert config.validate(c, need_wifi=True) == [
        "gpio[0].pin: 34 is input-only on ESP32, cannot be an output",
        'gpio[1].name: "relay" is already used by gpio[0]',
        "gpio[1].pin: 34 is already used by gpio[0].pin",
        "gpio[1].pin: 34 is input-only on ESP32, cannot be an output",
        "sensors[0].max: expected a number > min (1), got 0",
        'sensors[1].key: telemetry key "k" is already used by sensors[0]',
        'server.host: expected a non-empty string, got ""',
        "server.port: expected an integer 1-65535, got 70000",
        TOKEN,
        "wifi.ssid: expected the Wi-Fi network name (empty: no Wi-Fi, unix port only)",
    ]


def test_empty_ssid_is_a_problem_only_where_wifi_is_needed():
    c = cfg(wifi={"ssid": ""})
    assert config.validate(c) == []  # not an ESP32
    assert config.validate(c, need_wifi=False) == []
    assert config.validate(c, need_wifi=True) == [
        "wifi.ssid: expected the Wi-Fi network name (empty: no Wi-Fi, unix port only)"
    ]


def test_repo_config_json_validates_with_every_section():
    raw = json.loads(EXAMPLE.read_text())
    assert config.validate(raw, need_wifi=True) == []
    assert set(raw) == set(config.SCHEMA) | {"_comment"}
    kinds = {s["type"] for s in raw["sensors"]}
    assert kinds | {"dht11"} == set(config.SENSORS)


DTLS_NONE = dict.fromkeys(["pin", "client_cert", "client_key", "psk_identity", "psk_key"])


def test_x509_device_needs_no_token():
    # ThingsBoard knows the device by its certificate: token-less paths (OTA still needs one)
    server = {"host": "h", "coaps": True, "ca": "c", "client_cert": "d", "client_key": "k"}
    assert config.validate(cfg(token="", server=server)) == []


def test_psk_key_is_masked():
    server = {"host": "h", "coaps": True, "psk_identity": "dev", "psk_key": "0123456789"}
    c = cfg(server=server)
    assert config.validate(c) == []
    assert config.mask(c)["server"]["psk_key"] == "0123…" and server["psk_key"] == "0123456789"


def test_load_fills_defaults():
    c = cfg(
        token="",
        provisioning={"key": "k", "secret": "s"},
        server={"host": "h", "coaps": True, "ca": "ca.der"},
    )
    c["gpio"] = [OUT, {"name": "door", "pin": 35, "direction": "in"}]
    c["sensors"] = [{"type": "adc", "key": "v", "pin": 33}, {"type": "dht22", "pin": 4}]
    d, problems = config._validate(c, True)
    assert problems == []
    assert d["server"] == {
        "host": "h",
        "port": 5684,
        "coaps": True,
        "ca": "ca.der",
        **DTLS_NONE,
        "observe_refresh_s": 300,
        "payload": "json",
        "schema": None,
    }
    assert d["provisioning"] == {"device_name": "", "key": "k", "secret": "s"}
    assert [g["initial"] for g in d["gpio"]] == [0, None] and d["gpio"][1]["invert"] is False
    assert d["sensors"] == [
        {"type": "adc", "key": "v", "pin": 33, "scale": None, "atten": 11},
        {"type": "dht22", "pin": 4, "prefix": ""},
    ]


def test_defaults_are_what_a_minimal_config_gets():
    d, problems = config._validate({"server": {"host": "h"}, "token": "T"}, False)
    want = config.defaults()
    assert problems == [] and want["server"] == {
        "port": 5683,
        "coaps": False,
        "ca": None,
        **DTLS_NONE,
        "observe_refresh_s": 300,
        "payload": "json",
        "schema": None,
    }
    assert d == dict(want, server=dict(want["server"], host="h"), token="T")
    assert want["telemetry"] == {"interval_s": 60, "spool_bytes": 16384}
    assert want["claim"] is None and want["led"] is None and want["log_level"] == "info"
    assert want["ota"] == {
        "chunk_size": 1024,
        "window": 6,
        "chunk_timeout_s": 10,
        "retries": 5,
        "self_test_s": 120,
    }
    assert want["firmware"] == dict.fromkeys(("version", "app_version"), "0.1.0") | {
        "title": "coapboard",
        "app_title": "coapboard-app",
    }


def test_null_means_absent_only_where_the_default_is_null():
    assert config.validate(cfg(led=None, claim=None, provisioning=None)) == []
    assert config.validate(cfg(telemetry=None)) == ["telemetry: expected an object, got null"]


def test_comments_are_kept():
    c = cfg(_comment="top", server={"host": "h", "_comment": ["port", "default"]})
    d = config._validate(c, True)[0]
    assert d["_comment"] == "top" and d["server"]["_comment"] == ["port", "default"]


def test_validate_does_not_touch_its_input():
    c = cfg(gpio=[OUT], server={"host": "h", "coaps": True})
    before = copy.deepcopy(c)
    config.validate(c)
    assert c == before


def test_load_errors(tmp_path):
    p = tmp_path / "config.json"
    with pytest.raises(config.ConfigError) as e:
        config.load(str(p))
    assert e.value.problems == ["%s: file not found" % p]
    p.write_text('{\n  "server": {"host": "h",}\n}')
    with pytest.raises(config.ConfigError) as e:
        config.load(str(p))
    assert e.value.problems == [
        "%s: invalid JSON (Expecting property name enclosed in double quotes:"
        " line 2 column 26 (char 27))" % p
    ]
    p.write_text(json.dumps(cfg(token="", log_level=1)))
    with pytest.raises(config.ConfigError) as e:
        config.load(str(p))
    assert len(e.value.problems) == 2 and str(e.value) == "\n".join(e.value.problems)


def test_save_round_trip_leaves_no_tmp(tmp_path):
    p = str(tmp_path / "config.json")
    c = config.load(str(EXAMPLE))
    config.save(p, c)
    config.save(p, dict(c, token="NEW"))
    assert config.load(p) == dict(c, token="NEW")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.json"]


def test_save_refuses_bad_config(tmp_path):
    p = tmp_path / "config.json"
    config.save(str(p), BASE)
    with pytest.raises(config.ConfigError):
        config.save(str(p), cfg(token=""))
    assert json.loads(p.read_text()) == BASE


def test_mask():
    c = config.load(str(EXAMPLE))
    m = config.mask(c)
    assert m["token"] == "A1B2…" and m["wifi"]["password"] == "corr…"
    assert m["provisioning"]["key"] == "u7pi…" and m["provisioning"]["secret"] == "jpmw…"
    assert m["claim"]["secret_key"] == "clai…" and m["server"] == c["server"]
    assert c["token"] == "A1B2C3D4E5F6G7H8I9J0" and c["wifi"]["password"].startswith("correct")
    assert config.mask(BASE)["wifi"]["password"] == "…"  # short: nothing shown
    assert config.mask({"token": ""}) == {"token": ""}


@pytest.mark.parametrize(
    "chip, changes, want",
    [
        ("esp32s3", gpio(dict(OUT, pin=40)), []),  # no such pin on the classic ESP32
        ("esp32s3", gpio(dict(OUT, pin=34)), []),  # an output there
        ("esp32c3", gpio(dict(OUT, pin=25)), ["gpio[0].pin: 25 is not a GPIO on ESP32-C3"]),
        (
            "esp32c3",
            sensors({"type": "adc", "key": "soil", "pin": 34}),
            ["sensors[0].pin: 34 is not a GPIO on ESP32-C3"],
        ),
        (
            "esp32c6",
            sensors({"type": "adc", "key": "soil", "pin": 9}),
            [
                "sensors[0].pin: 9 is not an ADC1 pin on ESP32-C6 (0-6);"
                " ADC2 fails while Wi-Fi is on"
            ],
        ),
        ("esp32s2", sensors({"type": "adc", "key": "soil", "pin": 3}), []),
        (
            "esp32s2",
            gpio(dict(OUT, pin=46)),
            ["gpio[0].pin: 46 is input-only on ESP32-S2, cannot be an output"],
        ),
        (
            "esp32",
            cfg(claim={"button_pin": 35}),
            [
                "claim.button_pin: 35 has no pull-up on ESP32, a button there needs one:"
                " expected another pin"
            ],
        ),
        ("esp32c3", cfg(claim={"button_pin": 9}), []),  # the C3's BOOT button
    ],
)
def test_pins_are_checked_for_the_chip_the_board_reports(chip, changes, want):
    assert config.validate(changes, need_wifi=False, chip=chip) == want
