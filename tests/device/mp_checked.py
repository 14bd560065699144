# firmware/checked.py and start.settings() on the unix port: config.json is checked by
# config.py once and kept as checked; a boot that finds the kept settings stamped with what
# they came from (config.json, the protobuf schema file, the checker's code, the chip) runs with
# them and never loads the checker; any change of those is checked again. A restart for the
# kept settings carries the reset cause of the boot that made it, once.
import json
import os
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import fakes  # noqa: E402

from firmware import checked, start  # noqa: E402
from firmware.board import sim  # noqa: E402

_dir = fakes.scratch_dir("mp_checked")
CFG = {"server": {"host": "127.0.0.1"}, "token": "T0KEN"}


def scratch(cfg=CFG):
    fakes.empty(_dir)
    write(_dir + "/config.json", cfg)
    return sim.Board(_dir)


def write(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


class NoChecker:
    # stands in for firmware.config: a boot that loads the checker fails the case
    def __getattr__(self, name):
        raise AssertionError("the checker was loaded: firmware.config.%s" % name)


def without_checker(job):
    sys.modules["firmware.config"] = NoChecker()
    try:
        return job()
    finally:
        del sys.modules["firmware.config"]


def test_a_config_is_checked_once_then_read_as_kept_without_the_checker():
    b = scratch()
    cfg, fresh = start.settings(b)
    assert fresh and cfg["telemetry"]["interval_s"] == 60 and cfg["token"] == "T0KEN"
    assert checked.keep(b, cfg)
    got, fresh = without_checker(lambda: start.settings(b))
    assert got == cfg and not fresh


def test_a_changed_config_is_checked_again_and_a_bad_one_stops_the_boot():
    b = scratch()
    checked.keep(b, start.settings(b)[0])
    write(b.path("config.json"), dict(CFG, telemetry={"interval_s": 5}))
    cfg, fresh = start.settings(b)
    assert fresh and cfg["telemetry"]["interval_s"] == 5
    checked.keep(b, cfg)
    write(b.path("config.json"), dict(CFG, telemetry={"interval_s": "often"}))
    assert start.settings(b) == (None, False)


def test_the_stamp_covers_the_schema_file_the_checker_and_the_chip():
    b = scratch(dict(CFG, server={"host": "h", "payload": "protobuf", "schema": "s.json"}))
    roles = ("telemetry", "attributes", "rpc_request", "rpc_response")
    desc = dict({r: "M" for r in roles}, messages={"M": {}})
    write(b.path("s.json"), desc)
    cfg, fresh = start.settings(b)
    assert fresh and checked.keep(b, cfg)
    assert checked.kept(b) == (cfg, None)
    write(b.path("s.json"), dict(desc, rpc_response="N"))  # no such message now
    assert checked.kept(b) == (None, None)
    assert start.settings(b) == (None, False)
    write(b.path("s.json"), desc)
    assert checked.kept(b) == (cfg, None)
    b.chip = "esp32s3"
    assert checked.kept(b) == (None, None)
    b.chip = None
    k = json.load(open(b.path(checked.NAME)))
    k["stamp"][2] += 1  # another checker
    write(b.path(checked.NAME), k)
    assert checked.kept(b) == (None, None)


def test_the_checker_is_told_by_its_code():
    # a copy of the package: its config.py changes, and so does the checker's stamp
    pkg = _dir + "/fwcopy"
    fakes.empty(_dir)
    os.mkdir(pkg)
    for name in ("__init__.py", "checked.py", "config.py", "chips.py"):
        with open(ROOT + "/firmware/" + name, "rb") as src, open(pkg + "/" + name, "wb") as f:
            f.write(src.read())
    sys.path.insert(0, _dir)
    try:
        from fwcopy import checked as copy

        before = copy._checker()
        assert before == checked._checker()
        with open(pkg + "/config.py", "a") as f:
            f.write("# changed\n")
        assert copy._checker() != before
    finally:
        sys.path.pop(0)
        sys.modules.pop("fwcopy.checked", None)
        sys.modules.pop("fwcopy", None)


def test_unreadable_kept_settings_are_checked_again():
    b = scratch()
    for bad in ("{", "[]", '{"stamp": 1}', '{"config": {}, "stamp": []}'):
        with open(b.path(checked.NAME), "w") as f:
            f.write(bad)
        assert checked.kept(b) == (None, None)
        assert start.settings(b)[1]


def test_a_restart_carries_its_reset_cause_once():
    b = scratch()
    cfg = start.settings(b)[0]
    assert checked.keep(b, cfg, "power_on")
    assert checked.kept(b) == (cfg, "power_on")
    assert checked.kept(b) == (cfg, None)
    checked.keep(b, cfg, "watchdog")
    b2 = sim.Board(_dir)
    with open(b2.path("reset_cause"), "w") as f:
        f.write("soft_reset")  # what the restart itself is
    assert b2.reset_cause() == "soft_reset"
    start.settings(b2)
    assert b2.reset_cause() == "watchdog"
    assert sim.Board(_dir).reset_cause() == "soft_reset"
    # a cause left by a restart that another reset followed is not carried
    checked.keep(b, cfg, "watchdog")
    with open(b2.path("reset_cause"), "w") as f:
        f.write("hard_reset")
    b3 = sim.Board(_dir)
    start.settings(b3)
    assert b3.reset_cause() == "hard_reset" and checked.kept(b3) == (cfg, None)


def test_settings_not_kept_when_the_file_cannot_be_written():
    b = scratch()
    cfg = start.settings(b)[0]
    os.mkdir(b.path(checked.NAME + ".tmp"))  # where save_json writes first
    assert not checked.keep(b, cfg)
    assert checked.kept(b) == (None, None)


async def test_a_restart_that_finds_its_settings_stale_again_runs_on():
    # the boot after the restart finds config.json changed again: it checks it and runs on
    # (a restart would end this process), never a restart loop
    b = scratch()
    checked.keep(b, start.settings(b)[0], "power_on")  # what the restart left
    write(b.path("config.json"), dict(CFG, telemetry={"interval_s": 5}))
    with open(b.path("reset_cause"), "w") as f:
        f.write("soft_reset")
    b = sim.Board(_dir)
    ready = await start.boot(b)
    ready[0].close()
    assert b.reset_cause() == "power_on" and ready[1]["telemetry"]["interval_s"] == 5
    assert checked.kept(b) == (ready[1], None)
