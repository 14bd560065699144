# End to end: the firmware (main.py) on the MicroPython unix port with the simulated board,
# restarted by tools/simdevice.py like a powered board, against tbsim on loopback. Everything is
# judged by what tbsim stored or answered, by the board's pin files and by the device's output.
# The sim sensor SEQ counts 0, 1, 2 ... one step per telemetry message, so gaps (lost
# messages) and repeats (duplicates) show in the stored values.
import json
import time

import pytest

from firmware import config as fwconfig
from firmware.spool import Spool
from tests.e2e.conftest import (
    BOTH,
    SEQ,
    client_attrs,
    latest,
    make_config,
    rows,
    start_sim,
    until,
    wait_rows,
    write_json,
)

SENSOR_KEYS = {"chip_temp", "temperature", "air_temperature", "air_humidity", "soil", "soil_raw"}


def now_ms():
    return int(time.time() * 1000)


def messages(sim, did):
    """{ts: {key: value}} of everything stored for the device."""
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT ts, key, value FROM telemetry WHERE device_id=? ORDER BY ts", (did,)
        ).fetchall()
    )
    out = {}
    for ts, k, v in got:
        out.setdefault(ts, {})[k] = json.loads(v)
    return out


def attr_is(sim, did, key, value):
    return lambda: client_attrs(sim, did).get(key) == value


def assert_counted_once(r):
    """Rows of SEQ: values 0..n-1, each once, timestamps strictly increasing with them."""
    by_ts = sorted(r)
    assert [v for _, v in by_ts] == list(range(len(r))), by_ts
    assert len({ts for ts, _ in r}) == len(r)


# --- 1. boot: client attributes, telemetry, sensor failures


def test_the_config_is_checked_once_per_change_and_the_first_boot_reports_power_on(
    sim, dev, device_root, firmware
):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    until(attr_is(sim, did, "reset_cause", "power_on"), what="boot attributes")
    # the check, then a soft reset: the firmware runs without the checker, and says what
    # started the board, not the restart
    assert fw.grep("simdevice: ") == ["simdevice: soft reset, restart 1"]
    assert len(fw.grep("config.json checked: restarting")) == 1
    at = fw.mark()
    assert sim.rpc(did, "reboot", None) == {"result": "rebooting"}
    fw.wait_line("I app: reporting to", after=at)
    until(attr_is(sim, did, "reset_cause", "hard_reset"), what="reset_cause=hard_reset")
    assert not fw.grep("config.json checked", after=at)  # nothing changed: the kept settings
    cfg = json.loads((device_root / "config.json").read_text())
    cfg["telemetry"]["interval_s"] = 7
    write_json(device_root / "config.json", cfg)
    at = fw.mark()
    assert sim.rpc(did, "reboot", None) == {"result": "rebooting"}
    fw.wait_line("I app: reporting to", after=at)
    assert len(fw.grep("config.json checked: restarting", after=at)) == 1
    kept = json.loads((device_root / "config.checked.json").read_text())
    assert kept["config"]["telemetry"]["interval_s"] == 7


@BOTH
def test_boot_posts_client_attributes_and_telemetry_each_interval(
    sim, dev, device_root, firmware, payload
):
    did = dev["id"]
    k = payload.key  # protobuf: the key ThingsBoard stores a field under
    t0 = now_ms()
    fw = firmware(device_root, make_config(sim))
    r = wait_rows(sim, did, 4)
    t1 = now_ms()
    attrs = until(lambda: (lambda a: a if k("reset_cause") in a else None)(client_attrs(sim, did)))
    assert attrs[k("fw_title")] == "coapboard" and attrs[k("fw_version")] == "0.1.0"
    assert attrs["board"] == "unix-sim" and attrs["ip"] == "127.0.0.1"
    assert attrs[k("reset_cause")] == "power_on"
    mac = attrs["mac"].split(":")
    assert len(mac) == 6 and all(len(b) == 2 and int(b, 16) >= 0 for b in mac)
    assert isinstance(attrs[k("free_heap")], int) and attrs[k("free_heap")] > 0
    pins = [k("gpio_pump"), k("gpio_fan"), k("gpio_door")]
    assert {p: attrs[p] for p in pins} == dict.fromkeys(pins, 0)
    # outputs at their initial values; the fan is active-low, so its pin is high
    assert fw.pins() == {"26": 0, "27": 1}

    r = r[:4]
    assert [v for _, v in r] == [0, 1, 2, 3]
    stamps = [ts for ts, _ in r]
    assert all(t0 <= ts <= t1 for ts in stamps), (t0, stamps, t1)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(950 <= g <= 1400 for g in gaps), gaps
    msgs = messages(sim, did)
    for ts in stamps:  # one message per cycle, every configured sensor in it
        assert {k(x) for x in SENSOR_KEYS} | {SEQ} <= set(msgs[ts]), msgs[ts]
    assert fw.running()


@BOTH
def test_failed_sensor_is_reported_as_error_and_others_still_report(
    sim, dev, device_root, firmware, payload
):
    did = dev["id"]
    k = payload.key
    write_json(device_root / "sensors.json", {"fail": ["dht:4"], "chip_temp": 41.5})
    fw = firmware(device_root, make_config(sim))
    fw.wait_line("air_dht22: simulated failure of dht:4")
    wait_rows(sim, did, 2)
    msg = latest(sim, did)
    assert msg[k("air_dht22_error")] == "simulated failure of dht:4"
    assert k("air_temperature") not in msg and k("air_humidity") not in msg
    assert msg[k("chip_temp")] == 41.5
    assert {"temperature", "soil", k("soil_raw"), SEQ} <= set(msg)
    # the sensor recovers: its values come back, the error goes
    write_json(device_root / "sensors.json", {"dht:4": [22.5, 51.0]})
    n = len(rows(sim, did))
    wait_rows(sim, did, n + 2)
    msg = latest(sim, did)
    assert (msg[k("air_temperature")], msg[k("air_humidity")]) == (22.5, 51.0)
    assert k("air_dht22_error") not in msg


# --- 2. the interval follows the shared attribute


@BOTH
def test_interval_changes_live_with_shared_attribute(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 2)
    at = fw.mark()
    sim.set_shared(did, {"telemetry_interval": 2})
    fw.wait_line("telemetry interval now 2 s", after=at)
    n = len(rows(sim, did))
    r = wait_rows(sim, did, n + 3)
    stamps = [ts for ts, _ in r[n : n + 3]]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(1950 <= g <= 2400 for g in gaps), gaps

    # a bad value is refused and the interval stays
    at = fw.mark()
    sim.set_shared(did, {"telemetry_interval": 0})
    fw.wait_line("shared attribute telemetry_interval:", after=at)
    n = len(rows(sim, did))
    r = wait_rows(sim, did, n + 1)
    assert 1950 <= r[n][0] - r[n - 1][0] <= 2400, r[n - 1 :]

    # deleted: back to the config's 1 s
    at = fw.mark()
    sim.delete_shared(did, ["telemetry_interval"])
    fw.wait_line("telemetry interval now 1 s", after=at)
    n = len(rows(sim, did))
    r = wait_rows(sim, did, n + 3)
    stamps = [ts for ts, _ in r[n : n + 3]]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(950 <= g <= 1400 for g in gaps), gaps
    assert_counted_once(r)


def test_an_interval_said_again_changes_nothing(sim, dev, device_root, firmware):
    # every new subscription carries every shared attribute again: the same value must not
    # restart the timer (an off-schedule message), nor log, nor refuse a bad value again
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 2)
    at = fw.mark()
    sim.set_shared(did, {"telemetry_interval": 1})  # what the config says already
    sim.set_shared(did, {"telemetry_interval": 2})
    fw.wait_line("telemetry interval now 2 s", after=at)
    assert not fw.grep("telemetry interval now 1 s", after=at)
    n = len(wait_rows(sim, did, len(rows(sim, did)) + 2))  # on the 2 s schedule by now
    for _ in range(3):
        sim.set_shared(did, {"telemetry_interval": 2})
    sim.set_shared(did, {"telemetry_interval": 0})  # refused once ...
    sim.set_shared(did, {"telemetry_interval": 0})  # ... and not again
    r = wait_rows(sim, did, n + 3)
    stamps = [ts for ts, _ in r[n - 1 :]]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(g >= 1950 for g in gaps), gaps  # nothing sent off the 2 s schedule
    sim.set_shared(did, {"telemetry_interval": 3})  # notifications are handled in order
    fw.wait_line("telemetry interval now 3 s", after=at)
    assert len(fw.grep("telemetry interval now 2 s", after=at)) == 1
    assert len(fw.grep("shared attribute telemetry_interval:", after=at)) == 1


@BOTH
def test_interval_from_a_shared_attribute_set_before_boot(sim, dev, device_root, firmware):
    did = dev["id"]
    sim.set_shared(did, {"telemetry_interval": 2})
    fw = firmware(device_root, make_config(sim))
    fw.wait_line("telemetry interval now 2 s")
    r = wait_rows(sim, did, 4)
    stamps = [ts for ts, _ in r]
    assert 1950 <= stamps[3] - stamps[2] <= 2400, stamps


# --- 3. RPC


@BOTH
def test_gpio_rpcs_drive_pins_and_post_pin_states(sim, dev, device_root, firmware, payload):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 1)
    k = payload.key

    def rpc(method, params):  # protobuf: ThingsBoard's default RPC schemas carry JSON text
        return payload.reply(sim.rpc(did, method, payload.params(params)))

    assert rpc("setGpio", {"pin": 26, "value": 1}) == {"pin": 26, "value": 1}
    assert fw.pins()["26"] == 1
    until(attr_is(sim, did, k("gpio_pump"), 1), what="gpio_pump=1")

    assert rpc("setGpio", {"pin": "26", "value": 0}) == {"pin": 26, "value": 0}
    assert fw.pins()["26"] == 0
    until(attr_is(sim, did, k("gpio_pump"), 0), what="gpio_pump=0")

    assert rpc("setGpio", {"pin": "pump", "value": 1}) == {"pin": 26, "value": 1}
    assert fw.pins()["26"] == 1
    until(attr_is(sim, did, k("gpio_pump"), 1), what="gpio_pump=1")

    # active-low output: logical 1 drives the pin low
    assert rpc("setGpio", {"pin": "fan", "value": 1}) == {"pin": 27, "value": 1}
    assert fw.pins()["27"] == 0
    until(attr_is(sim, did, k("gpio_fan"), 1), what="gpio_fan=1")

    assert rpc("getGpio", {"pin": 26}) == {"pin": 26, "value": 1}
    assert rpc("getGpio", {"pin": "27"}) == {"pin": 27, "value": 1}
    write_json(device_root / "inputs.json", {"35": 1})
    assert rpc("getGpio", {"pin": "door"}) == {"pin": 35, "value": 1}

    assert rpc("getGpioStatus", {}) == {"26": True, "27": True, "35": True}
    got = rpc("setGpioStatus", {"pin": 26, "enabled": False})
    assert got == {"26": False, "27": True, "35": True}
    assert fw.pins() == {"26": 0, "27": 0}
    until(attr_is(sim, did, k("gpio_pump"), 0), what="gpio_pump=0")
    got = rpc("setGpioStatus", {"pin": "26", "enabled": True})
    assert got == {"26": True, "27": True, "35": True}
    assert fw.pins()["26"] == 1
    # params as a JSON string, as some ThingsBoard widgets send them
    got = rpc("setGpio", '{"pin": 26, "value": 0}')
    assert got == {"pin": 26, "value": 0}
    assert fw.pins()["26"] == 0
    assert fw.running()


def test_the_error_that_ended_the_last_run_is_reported_once_at_boot(
    sim, dev, device_root, firmware
):
    # firmware/crash.py keeps it in last_error before it resets the board
    (device_root / "last_error").write_text("RuntimeError('boom',)")
    firmware(device_root, make_config(sim))
    until(attr_is(sim, dev["id"], "last_error", "RuntimeError('boom',)"), what="last_error")
    until(lambda: not (device_root / "last_error").exists(), what="last_error removed")


@BOTH
def test_read_now_and_reboot(sim, dev, device_root, firmware, payload):
    did = dev["id"]
    k, p = payload.key, payload
    cfg = make_config(sim)
    cfg["telemetry"]["interval_s"] = 60  # nothing but readNow sends a second message soon
    fw = firmware(device_root, cfg)
    r = wait_rows(sim, did, 1)
    until(attr_is(sim, did, k("reset_cause"), "power_on"), what="boot attributes")
    t = now_ms()
    assert p.reply(sim.rpc(did, "readNow", None)) == {"result": "reading"}
    r = wait_rows(sim, did, 2, timeout=5)
    assert r[1][1] == 1 and r[1][0] >= t

    got = sim.rpc(did, "setGpio", p.params({"pin": 26, "value": 1}))
    assert p.reply(got) == {"pin": 26, "value": 1}
    until(attr_is(sim, did, k("gpio_pump"), 1), what="gpio_pump=1")
    at = fw.mark()
    assert p.reply(sim.rpc(did, "reboot", None)) == {"result": "rebooting"}
    fw.wait_line("simdevice: reset, restart", after=at)
    until(attr_is(sim, did, k("reset_cause"), "hard_reset"), what="reset_cause=hard_reset")
    attrs = client_attrs(sim, did)
    assert attrs[k("gpio_pump")] == 0  # a reboot starts the outputs at their initial values
    assert fw.pins()["26"] == 0
    r = wait_rows(sim, did, 3)
    assert r[2][1] == 0  # the first message of the new boot
    assert fw.running()


BAD_RPCS = [
    ("setGpio", {"pin": 5, "value": 1}, "allowlist"),
    ("setGpio", {"pin": "valve", "value": 1}, "allowlist"),
    ("setGpio", {"pin": True, "value": 1}, "allowlist"),
    ("setGpio", {"pin": 35, "value": 1}, "input"),
    ("setGpio", {"pin": 26, "value": 7}, "value"),
    ("setGpio", {"pin": 26, "value": "maybe"}, "value"),
    ("setGpio", {"pin": 26}, "value"),
    ("setGpio", None, "pin"),
    ("setGpio", [26, 1], "pin"),
    ("getGpio", {}, "pin"),
    ("getGpio", {"pin": 4}, "allowlist"),
    ("setGpioStatus", {"pin": 26}, "value"),
    ("setGpioStatus", {"pin": 35, "enabled": True}, "input"),
    ("frobnicate", {"pin": 26}, "unknown method"),
    ("setGpio", '{"pin": 26, "value": ', "JSON"),
]


@BOTH
def test_bad_rpcs_get_error_replies_and_the_device_keeps_running(
    sim, dev, device_root, firmware, payload
):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 1)
    wrong = []
    for method, params, fragment in BAD_RPCS:
        reply = payload.reply(sim.rpc(did, method, payload.params(params)))
        ok = (
            isinstance(reply, dict)
            and list(reply) == ["error"]
            and fragment.lower() in str(reply["error"]).lower()
        )
        if not ok:
            wrong.append((method, params, reply))
    assert not wrong, wrong
    assert fw.pins() == {"26": 0, "27": 1}  # nothing was driven
    assert fw.running()
    n = len(rows(sim, did))
    r = wait_rows(sim, did, n + 2)  # telemetry goes on
    assert_counted_once(r)
    reply = sim.rpc(did, "setGpio", payload.params({"pin": 26, "value": 1}))
    assert payload.reply(reply) == {"pin": 26, "value": 1}
    assert fw.pins()["26"] == 1


# --- 4. provisioning


def provisioning_config(sim, secret):
    cfg = make_config(sim)
    del cfg["token"]
    cfg["provisioning"] = {"device_name": "e2e-provisioned", "key": "E2E_KEY", "secret": secret}
    return cfg


@pytest.fixture
def profile(sim, payload):
    return sim.call(
        sim.store.save_profile,
        {
            "name": "field",
            "provision_type": "ALLOW_CREATE_NEW_DEVICES",
            "provision_key": "E2E_KEY",
            "provision_secret": "E2E_SECRET",
            "transport": payload.transport(),
        },
    )


@BOTH
def test_provisions_itself_stores_the_token_and_sends_telemetry(
    sim, profile, device_root, firmware, payload
):
    cfg = payload.install(device_root, provisioning_config(sim, "E2E_SECRET"))
    fw = firmware(device_root, cfg)
    fw.wait_line("provisioned; token stored in config.json")
    new = sim.call(sim.store.device_by_name, "e2e-provisioned")
    assert new is not None and new["profile_id"] == profile["id"]
    token = sim.call(sim.store.credentials, new["id"])["credentials_id"]
    path = device_root / "config.json"
    saved = fwconfig.load(str(path))  # still valid by the firmware's own rules
    # the same settings as before, now with the token (and the provisioning section kept)
    (device_root / "before.json").write_text(json.dumps(dict(cfg, token=token)))
    assert saved == fwconfig.load(str(device_root / "before.json"))
    assert json.loads(path.read_text())["token"] == token
    r = wait_rows(sim, new["id"], 2)
    assert_counted_once(r)
    until(attr_is(sim, new["id"], payload.key("fw_title"), "coapboard"), what="boot attributes")

    # the next boot uses the stored token: no second provisioning
    fw.stop()
    fw2 = firmware(device_root)
    n = len(rows(sim, new["id"]))
    wait_rows(sim, new["id"], n + 2)
    assert not fw2.grep("provision")
    assert len(sim.call(sim.store.devices)) == 1


def test_provisioning_with_a_wrong_secret_is_retried_without_crashing(
    sim, profile, device_root, firmware
):
    fw = firmware(device_root, provisioning_config(sim, "WRONG_SECRET"))
    failures = fw.wait_lines("provisioning failed:", 3)  # retried, 2 s then 4 s later
    assert all("NOT_FOUND: Provision data was not found!" in f for f in failures), failures
    assert fw.running()
    assert not fw.grep("Traceback")
    assert "token" not in json.loads((device_root / "config.json").read_text())
    assert sim.call(sim.store.device_by_name, "e2e-provisioned") is None


# --- 5. claiming


def test_claim_on_first_boot_only(sim, dev, device_root, firmware):
    did = dev["id"]
    cfg = make_config(sim)
    cfg["claim"] = {"secret_key": "claim-me", "duration_ms": 60000, "on_first_boot": True}
    t = now_ms()
    fw = firmware(device_root, cfg)
    fw.wait_line("claim request sent")
    claim = sim.call(sim.store.claim, did)
    assert claim["secret"] == "claim-me" and claim["claimed"] == 0
    assert t + 60000 <= claim["expires_ts"] <= now_ms() + 60000
    assert (device_root / "claimed").exists()
    assert sim.call(sim.core.claim, "e2e-device", "claim-me")[0] == "SUCCESS"

    # forget it on the server, reboot: the marker keeps the device from claiming again
    sim.call(lambda: sim.store.db.execute("DELETE FROM claims WHERE device_id=?", (did,)))
    at = fw.mark()
    assert sim.rpc(did, "reboot", None) == {"result": "rebooting"}
    fw.wait_line("simdevice: reset, restart", after=at)
    until(attr_is(sim, did, "reset_cause", "hard_reset"), what="second boot")
    n = len(rows(sim, did))
    wait_rows(sim, did, n + 2)
    assert not fw.grep("claim", after=at)
    assert sim.call(sim.store.claim, did) is None


@BOTH
def test_claim_button(sim, dev, device_root, firmware):
    did = dev["id"]
    cfg = make_config(sim)
    cfg["claim"] = {"secret_key": "by-button", "button_pin": 0}
    fw = firmware(device_root, cfg)
    wait_rows(sim, did, 2)
    assert sim.call(sim.store.claim, did) is None  # not pressed, not on first boot
    at = fw.mark()
    write_json(device_root / "inputs.json", {"0": 0})  # held down (active low)
    fw.wait_line("claim request sent", after=at)
    claim = sim.call(sim.store.claim, did)
    assert claim["secret"] == "by-button"
    assert not (device_root / "claimed").exists()


# --- 6. bad configs


def _config_without_host(sim):
    cfg = make_config(sim)
    del cfg["server"]["host"]
    return cfg


def _config_bad_port(sim):
    cfg = make_config(sim)
    cfg["server"]["port"] = "abc"
    return cfg


def _config_unknown_key(sim):
    cfg = make_config(sim)
    cfg["telemetry"]["intervall"] = 5
    return cfg


def _config_all_three(sim):
    cfg = _config_without_host(sim)
    cfg["server"]["port"] = "abc"
    cfg["telemetry"]["intervall"] = 5
    return cfg


HOST = "server.host: missing, expected a non-empty string"
PORT = 'server.port: expected an integer 1-65535, got "abc"'
UNKNOWN = 'telemetry: unknown key "intervall" (did you mean "interval_s"?)'


@pytest.mark.parametrize(
    "build, expected",
    [
        (_config_without_host, [HOST]),
        (_config_bad_port, [PORT]),
        (_config_unknown_key, [UNKNOWN]),
        (_config_all_three, [HOST, PORT, UNKNOWN]),
        (lambda sim: '{"server": {"host": "127.0.0.1",}', ["config.json: invalid JSON"]),
        (None, ["config.json: file not found"]),
    ],
    ids=["missing-key", "wrong-type", "unknown-key", "three-problems", "bad-json", "no-file"],
)
def test_bad_config_is_reported_key_by_key_and_the_device_stops(
    sim, dev, device_root, firmware, build, expected
):
    fw = firmware(device_root, build(sim) if build else None)
    assert fw.wait_exit() == 0
    fw.wait_line("simdevice: stopped (status 0)")
    problems = fw.grep("E app: config:")
    for e in expected:
        assert [p for p in problems if e in p], (e, fw.output())
    assert len(problems) == len(expected), fw.output()
    assert fw.grep("board: error signalled on the LED (pin 2)")
    assert fw.pins() == {"2": 1}  # the LED is lit
    assert not fw.grep("Traceback") and not fw.grep("restart")
    assert client_attrs(sim, dev["id"]) == {} and rows(sim, dev["id"]) == []


def test_bad_config_signals_on_its_own_led_when_that_part_is_readable(
    sim, dev, device_root, firmware
):
    cfg = _config_bad_port(sim)
    cfg["led"] = {"pin": 13, "invert": True}
    fw = firmware(device_root, cfg)
    assert fw.wait_exit() == 0
    assert fw.grep("board: error signalled on the LED (pin 13)")
    assert fw.pins() == {"13": 0}  # lit, active low


def test_coaps_without_a_way_to_verify_the_server_is_refused_not_downgraded(
    sim, dev, device_root, firmware
):
    cfg = make_config(sim)
    cfg["server"]["coaps"] = True
    fw = firmware(device_root, cfg)
    assert fw.wait_exit() == 0
    assert fw.grep("E app: config: server.ca: missing, expected the CA certificate file")
    assert rows(sim, dev["id"]) == []  # nothing went out in the clear


def test_coaps_file_problems_name_their_key(sim, dev, device_root, firmware):
    cfg = make_config(sim)
    cfg["server"].update(coaps=True, ca="ca.der", client_cert="dev.der", client_key="dev.key")
    (device_root / "ca.der").write_bytes(b"not a certificate")
    (device_root / "dev.key").write_bytes(b"\x30\x03\x02\x01\x01")  # DER, but no key
    fw = firmware(device_root, cfg)
    assert fw.wait_exit() == 0
    assert fw.grep("E app: config: server.ca: ca.der is not a DER or PEM CA certificate")
    assert fw.grep("E app: config: server.client_cert: cannot read dev.der (ENOENT)")
    assert rows(sim, dev["id"]) == []


# --- 7. packet loss


@pytest.mark.parametrize(
    "payload, interval, loss, stored",
    [("json", 1, 0.3, 12), ("json", 0.5, 0.5, 16), ("protobuf", 1, 0.3, 12)],
    indirect=["payload"],
)
def test_loss_both_ways_every_reading_stored_once_in_fewer_messages(
    sim, dev, device_root, firmware, payload, interval, loss, stored
):
    # a message keeps its ID while CoAP retransmits it, readings taken meanwhile wait in the
    # spool and go in batches (JSON; protobuf one by one): each reading is stored once with its
    # own timestamp, none is lost, and tbsim processes no more messages than there were
    # readings
    did = dev["id"]
    sim.faults.configure({"seed": 7, "in": {"loss": loss}, "out": {"loss": loss}})
    cfg = make_config(sim)
    # at 50 % loss one message in flight carries fewer readings than come in (a CoAP exchange
    # then averages some 25 s): the backlog grows until the loss ends, and the spool must hold it
    cfg["telemetry"].update(interval_s=interval, spool_bytes=131072)
    fw = firmware(device_root, cfg)
    # CoAP may retransmit one message for up to ~93 s
    wait_rows(sim, did, stored, timeout=300)
    snap = sim.faults.snapshot()
    assert snap["in"]["counters"]["dropped"] > 0 and snap["out"]["counters"]["dropped"] > 0
    sim.faults.configure({"in": {"loss": 0.0}, "out": {"loss": 0.0}})

    def whole():  # the backlog is in and fresh readings follow it
        r = rows(sim, did)
        top = max(v for _, v in r)
        return r if top >= stored + 3 and len({v for _, v in r}) == top + 1 else None

    try:
        until(whole, 200, "every reading stored")
    except AssertionError as e:
        raise AssertionError("%s\nstored: %s\n%s" % (e, rows(sim, did), fw.tail(60))) from None
    processed = sim.telemetry_posts(did)  # then the readings: each one counted is in them
    r = rows(sim, did)
    by_value = {}
    for ts, v in r:
        by_value.setdefault(v, set()).add(ts)
    assert all(len(stamps) == 1 for stamps in by_value.values()), by_value  # stored once
    assert len({ts for ts, _ in r}) == len(r)
    readings = max(by_value) + 1
    bound = readings
    if payload.proto:  # a protobuf message carries one reading: besides them only the two
        # update reports at boot, and a message sent again after its exchange ended unanswered
        # (no ACK, or no response after one)
        bound += 2 + len(fw.grep("telemetry not delivered")) + len(fw.grep("not reported"))
    assert processed <= bound, (processed, readings)
    msgs = messages(sim, did)
    for ts, _ in r:
        assert {payload.key(k) for k in SENSOR_KEYS | {SEQ}} <= set(msgs[ts])


# --- 8. tbsim restart


def registered(sim, did, kind):
    return sim.call(lambda: sim.registry.get(did, kind) is not None)


def test_a_refused_token_stops_traffic_and_keeps_the_readings(sim, dev, device_root, firmware):
    # a token the server does not know (a typo, a deleted device): the log says why, readings
    # go to the spool (the credentials may be fixed on the server), and nothing is sent but one
    # slow try, 30 s or more later
    fw = firmware(device_root, make_config(sim, token="WRONG_TOKEN"))
    fw.wait_line("the server refuses the access token (4.01)")
    fw.wait_line("spooled (1 waiting)")

    def datagrams():
        return sim.faults.snapshot()["in"]["counters"]["datagrams"]

    before = datagrams()
    fw.wait_line("spooled (5 waiting)")  # four more readings, a second apart
    assert datagrams() == before
    assert not fw.grep("telemetry refused, dropped")


def test_tbsim_restart_device_resubscribes_and_rpc_works_again(
    sim, dev, tbsim_dir, device_root, firmware
):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 2)
    assert sim.rpc(did, "setGpio", {"pin": 26, "value": 1}) == {"pin": 26, "value": 1}
    port = sim.coap_port
    sim.stop()
    sim2 = start_sim(tbsim_dir, coap_port=port)
    try:
        assert not registered(sim2, did, "rpc")
        n = len(rows(sim2, did))
        wait_rows(sim2, did, n + 2)  # telemetry goes on
        until(
            lambda: registered(sim2, did, "rpc") and registered(sim2, did, "attributes"),
            timeout=25,
            what="re-subscription",
        )
        assert sim2.rpc(did, "getGpio", {"pin": 26}) == {"pin": 26, "value": 1}
        assert sim2.rpc(did, "setGpio", {"pin": 27, "value": 1}) == {"pin": 27, "value": 1}
        assert fw.pins()["27"] == 0
        at = fw.mark()
        sim2.set_shared(did, {"telemetry_interval": 2})
        fw.wait_line("telemetry interval now 2 s", after=at)
        assert_counted_once(rows(sim2, did))
    finally:
        sim2.stop()


def test_tbsim_restart_rpc_ids_from_zero_again_are_not_taken_for_duplicates(
    sim, dev, tbsim_dir, device_root, firmware
):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 1)
    assert sim.rpc(did, "setGpio", {"pin": 26, "value": 1}) == {"pin": 26, "value": 1}  # id 0
    assert sim.rpc(did, "setGpio", {"pin": 26, "value": 0}) == {"pin": 26, "value": 0}  # id 1
    port = sim.coap_port
    sim.stop()
    sim2 = start_sim(tbsim_dir, coap_port=port)
    try:
        until(lambda: registered(sim2, did, "rpc"), timeout=25, what="re-subscription")
        # a new RPC that happens to get id 0 and the same method and params as the old id 0
        reply = sim2.rpc(did, "setGpio", {"pin": 26, "value": 1})
        assert reply == {"pin": 26, "value": 1}
        assert fw.pins()["26"] == 1
    finally:
        sim2.stop()


# --- 9. offline: the spool


@BOTH
def test_outage_nothing_lost_and_stored_in_order(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    before = wait_rows(sim, did, 3)
    at = fw.mark()
    sim.faults.configure({"in": {"loss": 1.0}, "out": {"loss": 1.0}})
    outage = rows(sim, did)
    fw.wait_line("spooled (6 waiting)", 60, at)  # the server unreachable for six intervals
    assert rows(sim, did) == outage  # it really was unreachable
    restored = now_ms()
    sim.faults.configure({"in": {"loss": 0.0}, "out": {"loss": 0.0}})
    last = outage[-1][1]
    r = until(lambda: (lambda r: r if r[-1][1] >= last + 4 else None)(rows(sim, did)), 60)
    assert r[: len(before)] == before
    # what was read during the outage arrived later, stamped with the device's time of reading
    late = [ts for ts, _ in r[len(outage) :] if ts < restored]
    assert late, (restored, r)
    assert [v for _, v in r] == list(range(len(r)))  # insertion order = message order
    assert [ts for ts, _ in r] == sorted(ts for ts, _ in r)


def test_outage_a_reading_every_interval_is_spooled(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = firmware(device_root, make_config(sim))
    wait_rows(sim, did, 3)
    at = fw.mark()
    sim.faults.configure({"in": {"loss": 1.0}, "out": {"loss": 1.0}})
    last = rows(sim, did)[-1][1]
    fw.wait_line("spooled (6 waiting)", 60, at)  # the server unreachable for six intervals
    sim.faults.configure({"in": {"loss": 0.0}, "out": {"loss": 0.0}})
    r = until(lambda: (lambda r: r if r[-1][1] >= last + 4 else None)(rows(sim, did)), 60)
    stamps = sorted(ts for ts, _ in r)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) <= 2500, gaps  # a reading each 1 s interval, outage or not


def _prefill(path, n, capacity):
    s = Spool(str(path), capacity)
    base = now_ms() - 3600000  # an hour ago: these carry their own timestamps
    for i in range(n):
        s.append(json.dumps({"ts": base + i * 1000, "values": {"spooled": i}}).encode())
    return len(s), s.dropped


def stored_sequence(sim, did):
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT key, value FROM telemetry WHERE device_id=? AND key IN (?, ?) ORDER BY rowid",
            (did, "spooled", SEQ),
        ).fetchall()
    )
    return [(k, json.loads(v)) for k, v in got]


def test_spool_left_from_before_a_reboot_is_flushed_first_in_order(
    sim, dev, device_root, firmware
):
    did = dev["id"]
    assert _prefill(device_root / "spool", 20, 16384) == (20, 0)
    firmware(device_root, make_config(sim))
    wait_rows(sim, did, 2)
    seq = stored_sequence(sim, did)
    assert seq[:20] == [("spooled", i) for i in range(20)]
    assert seq[20:22] == [(SEQ, 0), (SEQ, 1)]
    spooled = rows(sim, did, "spooled")
    assert [ts for ts, _ in spooled] == sorted(ts for ts, _ in spooled)  # their own stamps
    assert spooled[0][0] < now_ms() - 3000000


def test_full_spool_drops_the_oldest_and_reports_how_many(sim, dev, device_root, firmware):
    did = dev["id"]
    cfg = make_config(sim)
    cfg["telemetry"]["spool_bytes"] = 1024
    total = 40
    kept, dropped = _prefill(device_root / "spool", total, 1024)
    assert dropped > 0 and kept + dropped == total
    firmware(device_root, cfg)
    wait_rows(sim, did, 3)
    spooled = [v for _, v in rows(sim, did, "spooled")]
    # the newest survive, in order; every record is either stored or counted as dropped
    assert spooled == list(range(total - len(spooled), total))
    reported = sum(v for _, v in rows(sim, did, "spool_dropped"))
    assert reported == total - len(spooled), (reported, spooled)
