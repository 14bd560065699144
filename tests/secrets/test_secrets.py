# Secrets and the data they guard: the firmware run with known secrets prints none of them whole
# (log lines, error texts, config problems), tbsim's log masks tokens, config saves are atomic
# even when the process dies between write and rename, and RPC acts only on allowlisted pins.
import io
import json
import subprocess

import pytest

from firmware import config
from firmware.gpio import Gpio
from tests.e2e.conftest import (
    Firmware,
    make_config,
    rows,
    start_sim,
    until,
    wait_rows,
    write_json,
)
from tests.mpenv import MICROPYTHON, ROOT, micropython_env
from tests.tools.toolsupport import doctor
from tools.tbsim import RpcTimeout, TbSim
from tools.tbsim.events import EventLog

KEY, SECRET = "PROVKEY-7f3a9c21", "PROVSECRET-55e1b0d4"
WIFI = "WIFIPASS-c0ffee99"
CLAIM = "CLAIMSECRET-1234abcd"


def leaks(text, secrets):
    return [s for s in secrets if s in text]


def test_firmware_prints_no_secret_whole(tmp_path):
    log = io.StringIO()
    sim = TbSim(str(tmp_path / "tbsim"), coap_port=0, http_port=0, log=EventLog(stream=log))
    sim.start()
    fw = None
    try:
        root = tmp_path / "device"
        root.mkdir()
        cfg = make_config(sim)
        del cfg["token"]
        cfg["provisioning"] = {"device_name": "secret-device", "key": KEY, "secret": SECRET}
        cfg["wifi"] = {"ssid": "fieldnet", "password": WIFI}
        cfg["claim"] = {"secret_key": CLAIM, "on_first_boot": True}
        (root / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(root)
        fw.wait_line("provisioning failed:")  # no profile yet: refused, retried
        sim.call(
            sim.store.save_profile,
            {
                "name": "field",
                "provision_type": "ALLOW_CREATE_NEW_DEVICES",
                "provision_key": KEY,
                "provision_secret": SECRET,
            },
        )
        fw.wait_line("provisioned; token stored in config.json", timeout=30)
        did = sim.call(sim.store.device_by_name, "secret-device")["id"]
        token = sim.call(sim.store.credentials, did)["credentials_id"]
        wait_rows(sim, did, 2)
        fw.wait_line("claim request sent")
        # error paths: refused RPCs, an outage, then a token the server no longer knows
        assert "error" in sim.rpc(did, "setGpio", {"pin": 4, "value": 1})
        assert "error" in sim.rpc(did, "nope", {"token": "x"})
        at = fw.mark()
        write_json(root / "network.json", {"up": False})
        sim.faults.configure({"loss": 1.0})
        fw.wait_line("network down", after=at, timeout=20)
        fw.wait_line("spooled (", after=at, timeout=20)  # the readings wait meanwhile
        write_json(root / "network.json", {"up": True})
        sim.faults.configure({"loss": 0.0})
        fw.wait_line("network up", after=at, timeout=20)
        at = fw.mark()
        sim.call(sim.store.set_credentials, did, "ACCESS_TOKEN", "SOMEONE-ELSES-TOKEN")
        fw.wait_line("4.01", after=at, timeout=20)
    finally:
        if fw:
            fw.stop()
        sim.stop()
    printed = fw.output()
    assert "provisioned" in printed and "4.01" in printed  # the paths above did run
    assert leaks(printed, [KEY, SECRET, WIFI, CLAIM, token]) == [], printed
    # tbsim's log (it serves the token's paths) masks the token too
    assert token[:4] in log.getvalue() and token not in log.getvalue()


def test_config_problems_never_show_a_secret(tmp_path):
    bad = {
        "server": {"host": "h", "coaps": True, "psk_key": 31415926},
        "token": 27182818,
        "wifi": {"ssid": "x", "password": 99887766},
        "provisioning": "PROV-IN-PLACE-OF-SECTION",
        "claim": {"secret_key": ["CLAIM-IN-A-LIST"]},
    }
    secrets = ["31415926", "27182818", "99887766", "PROV-IN-PLACE", "CLAIM-IN-A-LIST"]
    problems = config.validate(bad)
    assert len(problems) >= 5 and leaks("\n".join(problems), secrets) == []
    # and what the firmware prints for such a config, on the unix port
    root = tmp_path / "device"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(bad))
    fw = Firmware(root)
    try:
        assert fw.wait_exit() == 0
    finally:
        fw.stop()
    assert "wifi.password: expected a string, got a number (not shown" in fw.output()
    assert leaks(fw.output(), secrets) == [], fw.output()


def test_mask_shows_at_most_four_characters():
    cfg = {
        "wifi": {"ssid": "net", "password": WIFI},
        "token": "TOKEN-abcdef123456",
        "provisioning": {"key": KEY, "secret": SECRET},
        "claim": {"secret_key": "short"},
        "server": {"host": "h", "psk_key": "00112233445566778899"},
    }
    shown = json.dumps(config.mask(cfg), ensure_ascii=False)
    secrets = [WIFI, "TOKEN-abcdef123456", KEY, SECRET, "short", "00112233445566778899"]
    assert leaks(shown, secrets) == []
    assert "TOKE…" in shown and '"secret_key": "…"' in shown


# --- configs are written atomically


def test_save_interrupted_between_write_and_rename_keeps_the_old_config(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    old = {"server": {"host": "127.0.0.1"}, "token": "OLD"}
    config.save(str(path), old)

    def die(*a):
        raise OSError("power cut")

    monkeypatch.setattr(config.os, "replace", die)
    with pytest.raises(OSError):
        config.save(str(path), dict(old, token="NEW"))
    assert config.load(str(path))["token"] == "OLD"  # the old file, whole
    assert json.loads((tmp_path / "config.json.tmp").read_text())["token"] == "NEW"
    monkeypatch.undo()
    config.save(str(path), dict(old, token="NEWER"))
    assert config.load(str(path))["token"] == "NEWER"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


MP_SAVE = """
import sys
from firmware import config

class DiesAtRename:  # the process ends where the rename would happen, files as they are
    def __getattr__(self, name):
        return getattr(real, name)
    def rename(self, a, b):
        sys.exit(7)

real = config.os
path = sys.argv[1]
config.save(path, {"server": {"host": "127.0.0.1"}, "token": "OLD"})
config.os = DiesAtRename()
config.save(path, {"server": {"host": "127.0.0.1"}, "token": "NEW"})
"""


def test_micropython_process_dying_at_rename_leaves_the_old_config(tmp_path):
    script = tmp_path / "save.py"
    script.write_text(MP_SAVE)
    path = tmp_path / "config.json"
    env = micropython_env(ROOT)
    p = subprocess.run([str(MICROPYTHON), str(script), str(path)], env=env, timeout=30)
    assert p.returncode == 7
    assert config.load(str(path))["token"] == "OLD"
    # the next boot loads the old config, and the next save replaces it and the leftover
    load = "from firmware import config; import sys; print(config.load(sys.argv[1])['token'])"
    out = subprocess.run(
        [str(MICROPYTHON), "-c", load, str(path)], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "OLD"


# --- RPC acts only within the allowlist


class RecordingBoard:
    def __init__(self):
        self.made = []
        self.writes = []

    def pin(self, num, direction, invert=False, initial=None, pull_up=False):
        self.made.append(num)
        board = self

        class P:
            level = 0

            def value(self, v=None):
                if v is None:
                    return self.level
                board.writes.append((num, v))
                self.level = v

        return P()


ALLOW = [
    {"name": "pump", "pin": 26, "direction": "out"},
    {"name": "door", "pin": 35, "direction": "in"},
]


@pytest.mark.parametrize("method", ["set_gpio", "set_status", "get_gpio"])
def test_pins_outside_the_allowlist_are_refused_and_never_touched(method):
    board = RecordingBoard()
    g = Gpio(board, ALLOW)
    assert board.made == [26, 35] and board.writes == []
    for pin in [n for n in range(40) if n not in (26, 35)] + ["4", "led", "", None, 26.0, True]:
        with pytest.raises(ValueError, match="not in the GPIO allowlist"):
            getattr(g, method)({"pin": pin, "value": 1, "enabled": True})
    if method != "get_gpio":
        for pin in (35, "35", "door"):  # an input of the allowlist cannot be driven
            with pytest.raises(ValueError, match="is an input"):
                getattr(g, method)({"pin": pin, "value": 1, "enabled": True})
    assert board.made == [26, 35] and board.writes == []


def test_refused_rpc_gets_an_error_reply_and_leaves_the_pins(tmp_path):
    sim = start_sim(tmp_path / "tbsim")
    fw = None
    try:
        did = sim.create_device("allow-device", token="ALLOW_DEVICE_TOKEN_01")["id"]
        root = tmp_path / "device"
        root.mkdir()
        (root / "config.json").write_text(json.dumps(make_config(sim, "ALLOW_DEVICE_TOKEN_01")))
        fw = Firmware(root)
        wait_rows(sim, did, 1)
        until(lambda: _rpc(sim, did, "getGpioStatus", None), timeout=20, what="RPC ready")
        before = fw.pins()
        for pin in (4, "4", 35, "door", "led", 2, 39):
            reply = sim.rpc(did, "setGpio", {"pin": pin, "value": 1})
            assert set(reply) == {"error"}, reply
        assert fw.pins() == before and "4" not in before and "2" not in before
        assert rows(sim, did)  # and it keeps reporting
        assert fw.running() and not fw.grep("Traceback")
    finally:
        if fw:
            fw.stop()
        sim.stop()


def _rpc(sim, did, method, params):
    try:
        return sim.rpc(did, method, params, timeout=3)
    except RpcTimeout:
        return None


def test_doctor_report_shows_no_secret_whole(tmp_path):
    sim = start_sim(tmp_path / "tbsim")
    try:
        token = "DOCTOR-TOKEN-8c1d2e3f"
        sim.create_device("doctor-device", token=token)
        root = tmp_path / "device"
        root.mkdir()
        cfg = make_config(sim, token)
        cfg["wifi"] = {"ssid": "fieldnet", "password": WIFI}
        cfg["claim"] = {"secret_key": CLAIM}
        (root / "config.json").write_text(json.dumps(cfg))
        out = "\n".join(doctor(root))
    finally:
        sim.stop()
    assert "token    accepted by the server" in out, out  # it did use the token
    assert leaks(out, [token, WIFI, CLAIM]) == [], out
