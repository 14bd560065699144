# firmware/config.py on the unix port: the example config.json loads, bad settings are reported
# key by key (all of them at once), save() survives a power cut at any block write on a
# littlefs (VfsLfs2) RAM disk, and mask() hides secrets.
import os
import sys

import vfs

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

from fakes import RAMDisk  # noqa: E402

from firmware import config  # noqa: E402

MINIMAL = {"server": {"host": "127.0.0.1"}, "token": "T0KEN"}


def mounted(disk, at="/cfgram"):
    vfs.mount(vfs.VfsLfs2(disk), at)
    return at


def fresh_disk():
    disk = RAMDisk()
    vfs.VfsLfs2.mkfs(disk)
    return disk


def problems(cfg, need_wifi=None):
    return config.validate(cfg, need_wifi)


def test_example_config_loads():
    c = config.load(ROOT + "/config.json", need_wifi=True)
    assert c["server"]["host"] == "thingsboard.example.com"
    assert c["telemetry"] == {"interval_s": 60, "spool_bytes": 16384}
    assert [s["type"] for s in c["sensors"]] == ["chip_temp", "adc", "dht22", "ds18b20", "sim"]
    assert [g["initial"] for g in c["gpio"]] == [0, 0, None]


def test_defaults_filled_and_empty_ssid_allowed_on_unix():
    c = config.load(ROOT + "/config.json")
    assert sys.platform != "esp32" and problems(MINIMAL) == []
    d = config.defaults()
    assert d["telemetry"] == {"interval_s": 60, "spool_bytes": 16384}
    assert d["log_level"] == "info" and d["claim"] is None and d["server"]["port"] == 5683
    assert c["firmware"] == {
        "title": "coapboard",
        "version": "0.1.0",
        "app_title": "coapboard-app",
        "app_version": "0.1.0",
    }
    assert c["ota"]["window"] == d["ota"]["window"] and c["ota"]["retries"] == 5


def test_each_bad_case_names_its_key():
    cases = [
        (
            {"server": {"host": "h", "port": "abc"}, "token": "T"},
            'server.port: expected an integer 1-65535, got "abc"',
        ),
        (
            dict(MINIMAL, gpio=[{"name": "relay", "pin": 34, "direction": "out"}]),
            "gpio[0].pin: 34 is input-only on ESP32, cannot be an output",
        ),
        (
            dict(MINIMAL, telemetry={"intervall": 5}),
            'telemetry: unknown key "intervall" (did you mean "interval_s"?)',
        ),
        (
            dict(MINIMAL, sensors=[{"type": "adc", "key": "v", "pin": 25}]),
            "sensors[0].pin: 25 is not an ADC1 pin on ESP32 (32-39); ADC2 fails while Wi-Fi is on",
        ),
        (
            dict(MINIMAL, led={"pin": 7}),
            "led.pin: 7 is wired to the SPI flash on ESP32",
        ),
        (
            {"server": {"host": "h"}},
            'token: expected a ThingsBoard access token (or a "provisioning" section)',
        ),
    ]
    for cfg, want in cases:
        assert problems(cfg) == [want], (want, problems(cfg))


def test_several_problems_all_reported():
    cfg = {
        "wifi": {"ssid": ""},
        "server": {"host": "", "port": 0},
        "telemetry": {"interval_s": 0},
        "gpio": [{"name": "a", "pin": 5, "direction": "in"}, {"name": "a", "pin": 5}],
        "log_level": "loud",
    }
    assert problems(cfg, need_wifi=True) == [
        'gpio[1].direction: missing, expected one of "in", "out"',
        'gpio[1].name: "a" is already used by gpio[0]',
        "gpio[1].pin: 5 is already used by gpio[0].pin",
        'log_level: expected one of "debug", "info", "warning", "error", got "loud"',
        'server.host: expected a non-empty string, got ""',
        "server.port: expected an integer 1-65535, got 0",
        "telemetry.interval_s: expected a number of seconds 0.5-86400, got 0",
        'token: expected a ThingsBoard access token (or a "provisioning" section)',
        "wifi.ssid: expected the Wi-Fi network name (empty: no Wi-Fi, unix port only)",
    ]


def test_load_errors_are_config_errors():
    at = mounted(fresh_disk())
    try:
        with open(at + "/bad.json", "w") as f:
            f.write('{"server": ')
        for name, want in (
            ("missing.json", at + "/missing.json: file not found"),
            ("bad.json", at + "/bad.json: invalid JSON (syntax error in JSON)"),
        ):
            try:
                config.load(at + "/" + name)
                raise AssertionError("loaded " + name)
            except config.ConfigError as e:
                assert e.problems == [want], e.problems
    finally:
        vfs.umount(at)


def test_save_then_load_gives_the_same_dict_and_no_tmp():
    at = mounted(fresh_disk())
    try:
        c = config.load(ROOT + "/config.json")
        c["token"] = "NEWTOKEN123"
        config.save(at + "/config.json", c)
        assert os.listdir(at) == ["config.json"]
        assert config.load(at + "/config.json") == c
    finally:
        vfs.umount(at)


def test_save_survives_power_cut_at_every_block_write():
    disk = fresh_disk()
    at = mounted(disk)
    old = config.load(ROOT + "/config.json")
    new = dict(old, token="PROVISIONED-TOKEN-0001")
    config.save(at + "/config.json", old)
    disk.snaps = []
    config.save(at + "/config.json", new)
    vfs.umount(at)
    seen = []
    for snap in disk.snaps:
        at = mounted(RAMDisk(bytearray(snap)), "/cfgsnap")
        try:
            got = config.load(at + "/config.json")
        finally:
            vfs.umount(at)
        assert got in (old, new), got["token"]
        seen.append(got["token"])
    # the cut points cover both sides of the replace
    assert len(disk.snaps) > 2 and seen[0] == old["token"] and seen[-1] == new["token"]


def test_write_cut_midway_keeps_the_old_file():
    real_open = open

    class CutFile:  # writes half of what it is given, then the power goes
        def __init__(self, path, mode):
            self.f = real_open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, s):
            self.f.write(s[: len(s) // 2])
            raise OSError(5)

    at = mounted(fresh_disk())
    try:
        path = at + "/config.json"
        config.save(path, MINIMAL)
        config.open = CutFile
        try:
            config.save(path, dict(MINIMAL, token="T9"))
            raise AssertionError("the cut write did not fail")
        except OSError:
            pass
        finally:
            del config.open
        assert config.load(path)["token"] == "T0KEN"
    finally:
        vfs.umount(at)


def test_stale_partial_tmp_is_ignored_and_replaced():
    at = mounted(fresh_disk())
    try:
        path = at + "/config.json"
        config.save(path, MINIMAL)
        with open(path + ".tmp", "w") as f:  # a save cut off mid-write
            f.write('{"server": {"ho')
        assert config.load(path)["token"] == "T0KEN"
        config.save(path, dict(MINIMAL, token="T1"))
        assert config.load(path)["token"] == "T1" and os.listdir(at) == ["config.json"]
    finally:
        vfs.umount(at)


def test_complete_tmp_without_old_file_is_adopted():
    # VfsFat's rename removes the old file first; a cut right then leaves only the .tmp
    at = mounted(fresh_disk())
    try:
        path = at + "/config.json"
        config.save(path + ".tmp", dict(MINIMAL, token="T2"))
        assert config.load(path)["token"] == "T2"
        assert os.listdir(at) == ["config.json"]
    finally:
        vfs.umount(at)


def test_save_refuses_a_bad_config_and_keeps_the_old_file():
    at = mounted(fresh_disk())
    try:
        path = at + "/config.json"
        config.save(path, MINIMAL)
        try:
            config.save(path, dict(MINIMAL, log_level="loud"))
            raise AssertionError("saved a bad config")
        except config.ConfigError as e:
            assert e.problems[0].startswith("log_level: expected one of")
        assert config.load(path)["log_level"] == "info" and os.listdir(at) == ["config.json"]
    finally:
        vfs.umount(at)


def test_save_replaces_on_posix_too():
    d = "/tmp/mp_config_" + "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    try:
        config.save(d + "/c.json", MINIMAL)
        config.save(d + "/c.json", dict(MINIMAL, token="T3"))
        assert config.load(d + "/c.json")["token"] == "T3" and os.listdir(d) == ["c.json"]
    finally:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
        os.rmdir(d)


def test_mask_hides_secrets():
    c = config.load(ROOT + "/config.json")
    m = config.mask(c)
    assert m["token"] == "A1B2…" and m["wifi"]["password"] == "corr…"
    assert m["provisioning"]["secret"] == "jpmw…" and m["claim"]["secret_key"] == "clai…"
    assert m["wifi"]["ssid"] == "workshop" and c["token"] == "A1B2C3D4E5F6G7H8I9J0"
    assert config.mask(dict(MINIMAL, token="short"))["token"] == "…"
