# OTA end to end: tbsim assigns a package, the firmware on the unix port downloads it into the
# simulated ota_1 (firmware/board/partition_sim.py), verifies it, resets under its supervisor,
# passes its self-test and reports UPDATED; or refuses, fails its trial and rolls back.
# Judged by the fw_state telemetry tbsim stored, the partition files and the otadata records.
import json
import random
import struct
from binascii import crc32

import pytest

from tests.device.otaimage import image
from tests.e2e.conftest import make_config, until, write_json

OLD = ["coapboard", "0.1.0"]  # tools.run's sample config names the flashed firmware so
PART = 0x180000  # ota_0 / ota_1 of the simulation


def states(sim, did, kind="fw"):
    # every <kind>_state the device reported, in order, with the fw_error of the same message
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT ts, key, value FROM telemetry WHERE device_id=? AND key IN (?, ?)"
            " ORDER BY rowid",
            (did, kind + "_state", kind + "_error"),
        ).fetchall()
    )
    out, errors = [], {}
    for ts, key, value in got:
        if key.endswith("_error"):
            errors[ts] = json.loads(value)
        else:
            out.append((ts, json.loads(value)))
    # QUEUED and INITIATED are the server's own (§6.2)
    return [
        (s, errors.get(ts)) if s == "FAILED" else s
        for ts, s in out
        if s not in ("QUEUED", "INITIATED")
    ]


def wait_state(sim, did, state, timeout=30.0, kind="fw"):
    return until(
        lambda: states(sim, did, kind) if _has(states(sim, did, kind), state) else None,
        timeout,
        "%s_state %s" % (kind, state),
    )


def _has(seq, state):
    return any(s == state or (isinstance(s, tuple) and s[0] == state) for s in seq)


def current(sim, did, kind="fw"):
    keys = ["current_%s_title" % kind, "current_%s_version" % kind]
    t = sim.telemetry(did, keys)
    return [t[k][0]["value"] if t.get(k) else None for k in keys]


def otadata(root):
    # [(seq, state)] of the two otadata records (blank: None)
    raw = (root / "otadata.bin").read_bytes()
    out = []
    for i in range(2):
        seq, _, st, crc = struct.unpack("<I20sII", raw[i * 4096 : i * 4096 + 32])
        ok = seq != 0xFFFFFFFF and crc == crc32(raw[i * 4096 : i * 4096 + 4], 0xFFFFFFFF)
        out.append((seq, st) if ok else None)
    return out


def slot(root, n):
    return (root / ("ota_%d.bin" % n)).read_bytes()


def ota_config(sim, **ota):
    cfg = make_config(sim)
    cfg["ota"] = dict({"chunk_timeout_s": 2, "retries": 3, "self_test_s": 10}, **ota)
    return cfg


def test_full_update_reboots_into_the_new_image_and_confirms_it(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = firmware(device_root, ota_config(sim))
    until(lambda: current(sim, did) == OLD, what="boot report of the flashed firmware")
    img = image(150000)
    pid = sim.add_ota("coapboard", "0.2.0", img)
    mark = fw.mark()
    sim.assign_ota(did, pid)
    wait_state(sim, did, "UPDATED")
    assert states(sim, did) == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert current(sim, did) == ["coapboard", "0.2.0"]
    assert slot(device_root, 1)[: len(img)] == img
    assert slot(device_root, 1)[len(img) :].count(0xFF) == PART - len(img)  # nothing past it
    assert otadata(device_root)[0] == (2, 2)  # ota_1 (seq 2) confirmed: VALID
    assert fw.grep("simdevice: reset, restart 1", after=mark)
    # the new image runs on: its boot attributes name it, and nothing is fetched again
    until(lambda: sim.attributes(did, "CLIENT_SCOPE").get("fw_version") == "0.2.0")
    assert not (device_root / "ota_progress.json").exists()
