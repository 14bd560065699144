# Power mode "sleep" end to end (docs/sleep.md): the firmware on the unix port deep-sleeps
# between wakes (tools/simdevice.py restarts it after the scaled time, reset cause deepsleep)
# against tbsim, with its power saving, persistent RPC and fault knobs. Commands are sent while
# the board sleeps: right after the supervisor's "deep sleep" line, when the board has ended its
# subscriptions (each test checks tbsim has none). Judged by what tbsim stored or answered and
# by the device's log; the board runs tests/e2e/counting_main.py, which prints a line each time
# an RPC handler runs, so "ran once" is counted, not inferred from replies.
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.device.otaimage import image
from tests.e2e.conftest import TOKEN, make_config, rows, start_sim, until
from tests.e2e.test_updates import OLD, current, ota_config, states, wait_state
from tests.tbsim.tbsim_helpers import http

COUNTING = Path(__file__).with_name("counting_main.py")
RAN = "test: rpc ran "  # counting_main.py's line: an RPC handler ran
STARTED = "I app: firmware coapboard"  # every start of the firmware: a wake or a boot
ASLEEP = "simdevice: deep sleep for"  # the supervisor: the board sleeps now
WAKE = re.compile(r"I sleep: awake (\d+) ms \(CoAP \d+ ms\), sleeping (\d+) ms")
GPIO = {"pin": 26, "value": 1}


def sleep_config(sim, interval=3, **power):
    # tools.run's sample device (make_config) in power mode "sleep", a wake every interval s
    cfg = make_config(sim)
    cfg["telemetry"]["interval_s"] = interval
    cfg["power"] = dict({"mode": "sleep", "awake_max_s": 5, "listen_ms": 300}, **power)
    return cfg


def boot(firmware, root, cfg):
    # deep sleep lasts half its time (the wakes and what tbsim sees are not scaled)
    return firmware(root, cfg, "--main", str(COUNTING), "--time-scale", "0.5")


def asleep(fw, after=0, timeout=30.0, wakes=1):
    """Wait for the end of the first `wakes` wakes that end at line `after` or later; -> the
    mark after the last one's "deep sleep" line: lines from there on are the next wakes'."""
    for _ in range(wakes):
        fw.wait_line(ASLEEP, timeout, after)
        after = fw.mark()
    return after


def registered(sim, did, kind):
    return sim.call(lambda: sim.registry.get(did, kind) is not None)


def persistent_rpc(sim, did, method, params):
    # -> its rpcId, at once; tbsim keeps it until the device answers or a minute is over
    body = {"method": method, "params": params, "persistent": True}
    body["expirationTime"] = int(time.time() * 1000) + 60000
    return http(sim, "POST", "/api/rpc/twoway/" + did, body)[1]["rpcId"]


def rpc_entity(sim, rid):
    return http(sim, "GET", "/api/rpc/persistent/" + rid)[1]


def rpc_done(sim, rid, timeout=30.0):
    # the persistent RPC once it is SUCCESSFUL
    return until(
        lambda: (lambda e: e if e["status"] == "SUCCESSFUL" else None)(rpc_entity(sim, rid)),
        timeout,
        "persistent RPC %s SUCCESSFUL" % rid,
    )


@pytest.fixture
def psm_dev(sim):
    # the device in a profile with power saving PSM: tbsim sends it nothing later than 1 s
    # after its last request, and holds its RPCs meanwhile
    client = {"powerMode": "PSM", "psmActivityTimer": 1000}
    transport = {"type": "COAP", "clientSettings": client}
    body = {"name": "psm", "profileData": {"transportConfiguration": transport}}
    profile = http(sim, "POST", "/api/deviceProfile", body)[1]["id"]["id"]
    return sim.create_device("e2e-device", token=TOKEN, profile_id=profile)


def test_a_two_way_rpc_sent_while_asleep_runs_once_at_the_next_wake(
    sim, dev, device_root, firmware
):
    did = dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim))
    at = asleep(fw)
    # the caller waits longer than the board sleeps: it gets the reply of the next wake
    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(sim.rpc, did, "setGpio", GPIO, 20)
        until(lambda: sim.call(sim.store.rpcs, did), what="the RPC logged")
        assert not registered(sim, did, "rpc")  # sent while the board slept
        assert caller.result(25) == GPIO
    # it ran in a wake after it was sent, and neither that wake nor the next runs it again
    asleep(fw, at, wakes=2)
    assert fw.grep(RAN + "setGpio") == fw.grep(RAN + "setGpio", after=at) == [RAN + "setGpio"]
    assert fw.grep(STARTED, after=at)  # a later wake, not the one that was ending


def test_a_persistent_rpc_to_a_psm_device_is_served_at_the_next_wake(
    sim, psm_dev, device_root, firmware
):
    did = psm_dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim))
    at = asleep(fw)
    rid = persistent_rpc(sim, did, "setGpio", GPIO)
    assert rpc_entity(sim, rid)["status"] == "QUEUED"  # the board sleeps: nothing went out
    assert not registered(sim, did, "rpc")
    done = rpc_done(sim, rid)
    assert done["response"] == GPIO
    asleep(fw, at, wakes=2)  # the wake that served it, and one more
    assert fw.grep(RAN) == fw.grep(RAN, after=at) == [RAN + "setGpio"]
    assert rpc_entity(sim, rid)["status"] == "SUCCESSFUL"


def test_attribute_changes_while_asleep_the_last_one_applied_once(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim, interval=3))
    at = asleep(fw)
    # two changes while the board sleeps: the next wake's subscription carries the last one
    sim.set_shared(did, {"telemetry_interval": 2})
    sim.set_shared(did, {"telemetry_interval": 4})
    assert not registered(sim, did, "attributes")  # both said while the board slept
    fw.wait_line("telemetry interval now", after=at)
    # three more wakes: each gets telemetry_interval 4 again and says nothing about it
    asleep(fw, at, wakes=4)
    assert fw.grep("telemetry interval now") == ["I app: telemetry interval now 4 s"]
    # from that wake on, a wake and its sleep make the 4 s the server set
    wakes = [WAKE.search(x) for x in fw.grep(WAKE.search, after=at)]
    assert len(wakes) == 4
    assert [int(w[1]) + int(w[2]) for w in wakes] == [4000] * 4, wakes


def journal(root):
    # the board's RPC journal on flash: [[id, crc, reply or None, state], ...]
    try:
        return json.loads((root / "rpcs.json").read_text())
    except (FileNotFoundError, ValueError):
        return []


def test_a_power_cut_after_an_rpc_ran_does_not_run_it_again(sim, dev, device_root, firmware):
    did = dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim))
    asleep(fw)
    # a technician keeps the board awake (answered at the next wake), so the RPC below reaches
    # it while it is up, subscribed
    assert sim.rpc(did, "stayAwake", 60, timeout=20) == {"awake_s": 60}
    sim.faults.configure({"in": {"loss": 1.0}})  # from now on nothing the board sends arrives
    rid = persistent_rpc(sim, did, "setGpio", GPIO)
    fw.wait_line(RAN + "setGpio")
    # the journal has the reply (which never arrives) before the power goes
    until(lambda: len(journal(device_root)) == 2 and journal(device_root)[1][2], what="reply")
    fw.stop()  # the power cut
    assert rpc_entity(sim, rid)["status"] != "SUCCESSFUL"
    sim.faults.configure({"in": {"loss": 0.0}})
    # power on: the same flash, the RTC memory lost; tbsim sends the RPC again at the wake
    fw = boot(firmware, device_root, None)
    done = rpc_done(sim, rid)
    assert done["response"] == GPIO  # the reply the journal kept
    asleep(fw)
    assert fw.grep(RAN) == []  # answered, not run again
    assert fw.grep("I app: reporting to")  # this was a boot (power on), not a wake


def test_after_a_server_restart_a_new_rpc_with_an_old_id_runs(
    sim, dev, tbsim_dir, device_root, firmware
):
    # ThingsBoard numbers RPCs from 0 again after a restart: the board's journal of earlier
    # wakes must not take a new RPC with an old id (and the same method and params) for a
    # repeat of the old one
    did = dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim))
    asleep(fw)
    assert sim.rpc(did, "setGpio", GPIO, timeout=20) == GPIO  # id 0
    port = sim.coap_port
    sim.stop()
    sim2 = start_sim(tbsim_dir, coap_port=port)
    try:
        at = asleep(fw, fw.mark())
        assert sim2.rpc(did, "setGpio", GPIO, timeout=20) == GPIO  # id 0 again
        assert fw.grep(RAN, after=at) == [RAN + "setGpio"]
    finally:
        sim2.stop()


def test_a_firmware_update_assigned_while_asleep_completes_and_the_board_sleeps_again(
    sim, dev, device_root, firmware
):
    did = dev["id"]
    cfg = sleep_config(sim)
    cfg["ota"] = ota_config(sim)["ota"]
    fw = boot(firmware, device_root, cfg)
    until(lambda: current(sim, did) == OLD, what="boot report of the flashed firmware")
    at = asleep(fw)
    sim.assign_ota(did, sim.add_ota("coapboard", "0.2.0", image(60000)))
    assert not registered(sim, did, "attributes")  # assigned while the board slept
    # the update keeps the wake up until it is done, the board resets into the new image,
    # which confirms itself and reports UPDATED
    wait_state(sim, did, "UPDATED", timeout=40)
    assert states(sim, did) == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert current(sim, did) == ["coapboard", "0.2.0"]
    assert fw.grep("simdevice: reset, restart", after=at)
    # and it sleeps again, wake after wake, fetching nothing more
    fw.wait_line("confirmed", after=at)
    asleep(fw, at, wakes=3)
    assert len(fw.grep("downloading")) == 1
    assert states(sim, did)[-1] == "UPDATED"


def test_loss_during_wakes_readings_stored_once_rpc_run_once(sim, dev, device_root, firmware):
    did = dev["id"]
    sim.faults.configure({"seed": 5, "in": {"loss": 0.3}, "out": {"loss": 0.3}})
    fw = boot(firmware, device_root, sleep_config(sim))
    mark = asleep(fw, timeout=60)
    rid = persistent_rpc(sim, did, "setGpio", GPIO)  # sent while the board sleeps
    asleep(fw, mark, 120, wakes=4)  # four wakes in the loss, and the RPC answered
    assert rpc_done(sim, rid, timeout=120)["response"] == GPIO
    snap = sim.faults.snapshot()
    assert snap["in"]["counters"]["dropped"] > 0 and snap["out"]["counters"]["dropped"] > 0
    sim.faults.configure({"in": {"loss": 0.0}, "out": {"loss": 0.0}})
    # the wake under way, then two without loss, which send what the spool kept; the power
    # goes while the board sleeps
    asleep(fw, fw.mark(), 120, wakes=3)
    fw.stop()
    assert fw.grep(RAN) == [RAN + "setGpio"]  # once, whatever tbsim re-sent
    # one reading per wake (wake_reason is in each), every one stored, once
    readings = rows(sim, did, "wake_reason")
    assert len(readings) == len(fw.grep(STARTED)) >= 8, (readings, fw.output())
    assert [r for _, r in readings].count("power_on") == 1


def test_the_stay_awake_attribute_keeps_the_board_up_until_it_is_cleared(
    sim, dev, device_root, firmware
):
    # a technician's maintenance: set while the board sleeps, it holds the next wake past
    # awake_max_s (5 s), RPCs answered at once; cleared, the board sleeps again
    did = dev["id"]
    fw = boot(firmware, device_root, sleep_config(sim))
    at = asleep(fw)
    sim.set_shared(did, {"stay_awake": True})
    fw.wait_line(STARTED, 30, at)
    up = fw.mark()
    start = time.monotonic()
    answered = 0
    while time.monotonic() - start < 8:  # past awake_max_s: each RPC answered within 2 s
        assert sim.rpc(did, "getGpioStatus", timeout=2) is not None
        answered += 1
    assert not fw.grep(ASLEEP, up) and answered >= 4
    sim.set_shared(did, {"stay_awake": False})
    asleep(fw, up, timeout=15)
