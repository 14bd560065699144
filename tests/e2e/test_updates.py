# OTA end to end: tbsim assigns a package, the firmware on the unix port downloads it into the
# simulated ota_1 (firmware/board/partition_sim.py), verifies it, resets under its supervisor,
# passes its self-test and reports UPDATED; or refuses, fails its trial and rolls back.
# Judged by the fw_state telemetry tbsim stored, the partition files and the otadata records.
import json
import random
import struct
from binascii import crc32
from pathlib import Path

import pytest

from tests.device.otaimage import image
from tests.e2e.conftest import BOTH, make_config, rows, until, wait_rows, write_json

REPO = Path(__file__).resolve().parents[2]
OLD = ["coapboard", "0.1.0"]  # tools.run's sample config names the flashed firmware so
PART = 0x180000  # ota_0 / ota_1 of the simulation


def same(key):
    return key


def states(sim, did, kind="fw", k=same):
    # every <kind>_state the device reported, in order, with the fw_error of the same message;
    # k: the key tbsim stores a name under (protobuf: its JSON name, payload.key)
    err = k(kind + "_error")
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT ts, key, value FROM telemetry WHERE device_id=? AND key IN (?, ?)"
            " ORDER BY rowid",
            (did, k(kind + "_state"), err),
        ).fetchall()
    )
    out, errors = [], {}
    for ts, key, value in got:
        if key == err:
            errors[ts] = json.loads(value)
        else:
            out.append((ts, json.loads(value)))
    # QUEUED and INITIATED are the server's own (§6.2)
    return [
        (s, errors.get(ts)) if s == "FAILED" else s
        for ts, s in out
        if s not in ("QUEUED", "INITIATED")
    ]


def wait_state(sim, did, state, timeout=30.0, kind="fw", k=same):
    return until(
        lambda: (lambda s: s if _has(s, state) else None)(states(sim, did, kind, k)),
        timeout,
        "%s_state %s" % (kind, state),
    )


def _has(seq, state):
    return any(s == state or (isinstance(s, tuple) and s[0] == state) for s in seq)


def current(sim, did, kind="fw", k=same):
    keys = [k("current_%s_title" % kind), k("current_%s_version" % kind)]
    t = sim.telemetry(did, keys)
    return [t[key][0]["value"] if t.get(key) else None for key in keys]


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


@BOTH
def test_full_update_reboots_into_the_new_image_and_confirms_it(
    sim, dev, device_root, firmware, payload
):
    did = dev["id"]
    k = payload.key
    fw = firmware(device_root, ota_config(sim))
    until(lambda: current(sim, did, k=k) == OLD, what="boot report of the flashed firmware")
    img = image(150000)
    pid = sim.add_ota("coapboard", "0.2.0", img)
    mark = fw.mark()
    sim.assign_ota(did, pid)
    wait_state(sim, did, "UPDATED", k=k)
    want = ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert states(sim, did, k=k) == want
    assert current(sim, did, k=k) == ["coapboard", "0.2.0"]
    assert slot(device_root, 1)[: len(img)] == img
    assert slot(device_root, 1)[len(img) :].count(0xFF) == PART - len(img)  # nothing past it
    # the first boot recorded ota_0 as seq 1 (record 0), as ESP-IDF's bootloader does; ota_1
    # (seq 2) went into the other record and confirmed itself: VALID
    assert otadata(device_root) == [(1, 2), (2, 2)]
    assert len(fw.grep("simdevice: reset, restart", after=mark)) == 1
    # the new image runs on: its boot attributes name it, and nothing is fetched again
    until(lambda: sim.attributes(did, "CLIENT_SCOPE").get(k("fw_version")) == "0.2.0")
    assert not (device_root / "ota_progress.json").exists()


def assign_and_wait(sim, did, data, state, version="0.2.0", timeout=30.0, **kw):
    pid = sim.add_ota("coapboard", version, data, **kw)
    sim.assign_ota(did, pid)
    return wait_state(sim, did, state, timeout)


@pytest.fixture
def running(sim, dev, device_root, firmware):
    # a device on the flashed firmware, its boot report in
    fw = firmware(device_root, ota_config(sim))
    until(lambda: current(sim, dev["id"]) == OLD, what="boot report")
    return fw


def blank(root, n):
    return slot(root, n).count(0xFF) == PART


def test_a_boot_on_trial_that_checks_a_changed_config_goes_on_with_the_trial(
    sim, dev, device_root, running
):
    # the restart for the checked config is a soft reset, which goes on with the new image on
    # trial (a hard one would end the trial: the image would roll back)
    did = dev["id"]
    cfg = json.loads((device_root / "config.json").read_text())
    cfg["telemetry"]["interval_s"] = 2
    write_json(device_root / "config.json", cfg)
    mark = running.mark()
    assign_and_wait(sim, did, image(150000), "UPDATED")
    assert states(sim, did) == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    restarts = [x.split(",")[0] for x in running.grep("simdevice: ", after=mark)]
    assert restarts == ["simdevice: reset", "simdevice: soft reset"]  # the update's, the check's
    kept = json.loads((device_root / "config.checked.json").read_text())
    assert kept["config"]["telemetry"]["interval_s"] == 2 and "cause" not in kept


def test_checksum_mismatch_fails_and_never_switches_the_boot_slot(sim, dev, device_root, running):
    did = dev["id"]
    got = assign_and_wait(sim, did, image(20000), "FAILED", checksum="ab" * 32)
    assert got[:2] == ["DOWNLOADING", "DOWNLOADED"]
    assert got[2][0] == "FAILED" and "SHA256 mismatch" in got[2][1], got
    assert otadata(device_root) == [(1, 2), None]  # set_boot never ran: ota_0 boots
    assert not running.grep("board: reset")
    # the failed package is not fetched again; the device runs on
    n = len(running.grep("downloading"))
    at = running.mark()
    sim.set_shared(did, {"telemetry_interval": 2})  # any notification re-runs the decision
    running.wait_line("telemetry interval now 2 s", after=at)  # the notification was handled
    wait_rows(sim, did, len(rows(sim, did)) + 2)
    assert len(running.grep("downloading")) == n == 1
    assert current(sim, did) == OLD


@pytest.mark.parametrize(
    "data, algorithm, reason",
    [
        (image(PART + 1), "SHA256", "does not fit the 1572864-byte partition"),
        (b"\xff" * 4096 + image(8000), "SHA256", "merged flash image"),
        (b"\x00" + image(8000)[1:], "SHA256", "not the ESP32 app-image magic"),
        (image(8000), "SHA384", "SHA384"),
    ],
    ids=["oversize", "merged-image", "wrong-magic", "unsupported-checksum"],
)
def test_images_that_cannot_be_apps_are_refused_before_anything_is_written(
    sim, dev, device_root, running, data, algorithm, reason
):
    got = assign_and_wait(sim, dev["id"], data, "FAILED", algorithm=algorithm)
    assert got[-1][0] == "FAILED" and reason in got[-1][1], got
    assert "DOWNLOADED" not in got
    assert blank(device_root, 1)
    assert otadata(device_root) == [(1, 2), None]


def test_a_new_assignment_or_an_unassignment_stops_the_download(sim, dev, device_root, running):
    did = dev["id"]
    sim.call(sim.faults.configure, {"out": {"delay": 0.01}})  # slow enough to step in
    first = sim.add_ota("coapboard", "0.2.0", image(400000))
    sim.assign_ota(did, first)
    wait_state(sim, did, "DOWNLOADING")
    sim.assign_ota(did, None)
    running.wait_line("assignment removed: download stopped")
    small = image(30000)
    sim.call(sim.faults.configure, {"out": {"delay": 0}})
    sim.assign_ota(did, sim.add_ota("coapboard", "0.3.0", small))
    wait_state(sim, did, "UPDATED")
    assert current(sim, did) == ["coapboard", "0.3.0"]
    assert slot(device_root, 1)[: len(small)] == small
    assert "FAILED" not in str(states(sim, did))


def test_killed_during_download_resumes_and_ends_with_the_image(sim, dev, device_root, firmware):
    did = dev["id"]
    cfg = ota_config(sim, window=1)
    fw = firmware(device_root, cfg)
    until(lambda: current(sim, did) == OLD, what="boot report")
    sim.call(sim.faults.configure, {"out": {"delay": 0.004}})
    img = image(500000)
    sim.assign_ota(did, sim.add_ota("coapboard", "0.2.0", img))
    rng = random.Random(5)
    for point in sorted(rng.randrange(20000, 450000) for _ in range(3)):
        until(lambda p=point: _flashed(device_root) >= p, 60, "progress past %d" % point)
        fw.stop()  # power cut: SIGKILL, wherever the firmware was
        assert otadata(device_root) == [(1, 2), None]  # ota_0 still boots
        assert slot(device_root, 0).startswith(b"\xe9 coapboard")
        fw = firmware(device_root)
    wait_state(sim, did, "UPDATED", timeout=90)
    assert slot(device_root, 1)[: len(img)] == img
    assert current(sim, did) == ["coapboard", "0.2.0"]
    assert len(fw.grep("resuming coapboard 0.2.0")) == 1  # the last start resumed too


def _flashed(root):
    try:
        return json.loads((root / "ota_progress.json").read_text())["flashed"]
    except (OSError, ValueError):
        return 0


def test_a_new_image_that_fails_its_self_test_is_rolled_back(sim, dev, device_root, firmware):
    did = dev["id"]
    cfg = ota_config(sim, self_test_s=5)
    cfg["wifi"] = {"ssid": "lab", "password": "secret-wifi"}  # it joins before anything else
    fw = firmware(device_root, cfg)
    until(lambda: current(sim, did) == OLD, what="boot report")
    mark = fw.mark()
    # the new image will not find the network: it cannot pass its trial. Down before the
    # update, not during it: the running image goes on over the link it has (only a join
    # needs the network), and the new one fails however soon after the download it boots
    write_json(device_root / "network.json", {"up": False})
    sim.assign_ota(did, sim.add_ota("coapboard", "0.2.0", image(30000)))
    fw.wait_line("self-test failed: resetting to roll back", timeout=30)
    fw.wait_lines("simdevice: reset, restart", 2, after=mark)  # the update's, the trial's
    at = fw.mark()
    write_json(device_root / "network.json", {"up": True})
    got = wait_state(sim, did, "FAILED")
    assert got[:4] == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING"]
    assert got[4] == (
        "FAILED",
        "rolled back to 0.1.0: self-test failed: no telemetry acknowledged within 5 s",
    )
    assert current(sim, did) == OLD
    assert otadata(device_root) == [(1, 2), (2, 4)]  # ota_1 (seq 2) ABORTED by the bootloader
    wait_rows(sim, did, len(rows(sim, did)) + 2)  # the old image runs on ...
    assert not fw.grep("downloading coapboard 0.2.0", after=at)  # ... and does not fetch again


def test_update_through_ten_percent_loss(sim, dev, device_root, firmware):
    did = dev["id"]
    # a chunk's time covers a CoAP retransmission (ACK_TIMEOUT 2-3 s), as the default's does
    running = firmware(device_root, ota_config(sim, chunk_timeout_s=5, retries=5))
    until(lambda: current(sim, did) == OLD, what="boot report")
    sim.call(sim.faults.configure, {"seed": 3, "loss": 0.1})
    img = image(60000)
    try:
        got = assign_and_wait(sim, did, img, "UPDATED", timeout=90)
    except AssertionError:
        raise AssertionError("%s\n%s" % (states(sim, did), running.tail(60))) from None
    assert [s for s in got if isinstance(s, str)][-4:] == [
        "DOWNLOADED",
        "VERIFIED",
        "UPDATING",
        "UPDATED",
    ]
    assert slot(device_root, 1)[: len(img)] == img


# --- software updates: app bundles (firmware/bundle.py, lib/ota/appslot.py, tools/bundle.py)

MARK = 'print("app bundle %s running")\n'


def app_bundle(mpy=False, **replace):
    # this checkout's lib/ and firmware/ as a bundle (.py, or .mpy as tools/bundle.py compiles
    # them), with some files replaced
    from tools import bundle

    files = bundle.unpack(bundle.build(mpy))
    return bundle.pack([(rel, replace.get(rel, data)) for rel, data in files])


def upload_bundle(sim, data, version):
    from tools import bundle

    url = "http://127.0.0.1:%d" % sim.http_port
    return bundle.upload(url, data, "coapboard-app", version, "e2e-device")


def slot_state(root):
    return json.loads((root / "apps" / "slot.json").read_text())


@pytest.mark.parametrize("mpy", [False, True], ids=["py", "mpy"])
def test_app_bundle_update_installs_into_a_slot_and_confirms_it(
    sim, dev, device_root, running, mpy
):
    did = dev["id"]
    until(lambda: current(sim, did, "sw") == ["coapboard-app", "0.1.0"], what="sw boot report")
    init = (MARK % "0.2.0").encode() + (REPO / "firmware" / "__init__.py").read_bytes()
    upload_bundle(sim, app_bundle(mpy, **{"firmware/__init__.py": init}), "0.2.0")
    running.wait_line("app bundle 0.2.0 running", timeout=30)  # its own code runs
    got = wait_state(sim, did, "UPDATED", kind="sw")
    assert got == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert current(sim, did, "sw") == ["coapboard-app", "0.2.0"]
    assert slot_state(device_root) == {"run": "a", "prev": "", "state": "valid"}
    app = "firmware/app.mpy" if mpy else "firmware/app.py"
    assert (device_root / "apps/a" / app).exists()
    if not mpy:
        assert (device_root / "apps/a" / app).read_bytes() == (REPO / app).read_bytes()
    assert not (device_root / "apps/bundle.bin").exists()
    assert current(sim, did) == OLD  # the firmware image is untouched


def test_an_app_bundle_that_cannot_start_is_rolled_back(sim, dev, device_root, running):
    did = dev["id"]
    broken = b'raise RuntimeError("this app is broken")\n'
    upload_bundle(sim, app_bundle(**{"firmware/app.py": broken}), "0.3.0")
    running.wait_line("failed on trial, back to the previous one", timeout=30)
    got = wait_state(sim, did, "FAILED", kind="sw")
    assert got[:4] == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING"]
    assert got[4][0] == "FAILED" and "rolled back to 0.1.0" in got[4][1], got
    assert "this app is broken" in got[4][1]
    assert current(sim, did, "sw") == ["coapboard-app", "0.1.0"]
    st = slot_state(device_root)
    assert (st["run"], st["state"], st["aborted"]) == ("", "valid", "a")
    # the factory app runs on: telemetry still flows
    wait_rows(sim, did, len(rows(sim, did)) + 2)
