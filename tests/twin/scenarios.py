# scenarios.py: what the heap gates (tests/twin/test_heap.py) and the heap benchmark
# (bench/twin_heap.py) run, one mechanism for both: the firmware on the ESP32 twin
# (tools/twin.py: 32-bit, lib/ and firmware/ as .mpy) with -X heapsize=K, started by
# tools/simdevice as a board boots (boot.py, then main.py), against tbsim in this process. A
# scenario returns once the work is done and checked; anything else raises AssertionError, as
# soon as the device's output shows a MemoryError, a traceback or that it hears nothing more.
#
# The telemetry-cycle scenarios run bench/fw_device.py in main.py's place (bench/fw_main.py):
# it runs the real firmware with a 0 ms interval and counts cycles and RPCs. It is frozen into
# the twin (tools/twin.py), so the heap holds the firmware's code and data, none of the driver's.
import json
import os
import signal
import socket
import subprocess
import threading
from functools import lru_cache
from pathlib import Path

from firmware.board import partition_sim
from tests.device.otaimage import image
from tests.e2e.conftest import (
    SEQ,
    TOKEN,
    Firmware,
    Payload,
    make_config,
    rows,
    start_sim,
    until,
    write_json,
)
from tests.e2e.test_updates import OLD, current, slot, states
from tests.pki import Pki
from tests.procs import wait_bound
from tools import bundle, simdevice, twin
from tools.tbsim.events import EventLog

# The board's GC heap (KB), what the gates give the twin: an ESP32 on the official image with
# Wi-Fi up, and with a coaps (DTLS) session open
HEAP_K = 112
HEAP_COAPS_K = 104
# The gates' work: telemetry cycles flat out (about 4 s) with RPCs spread over all of them, and
# a full ESP32 image (the simulated ota_1 holds 1,572,864 bytes)
CYCLES, RPCS, IMAGE = 1000, 400, 1500000

REPO = Path(__file__).resolve().parents[2]
FW_MAIN = REPO / "bench" / "fw_main.py"
TROUBLE = ("MemoryError", "memory allocation failed", "Traceback", "Task exception", "E bench")
DEAF = 3  # telemetry messages spooled in a row (deaf())
WAKES = 4  # power mode sleep: wakes that each serve an RPC sent while the board slept
UPDATED = ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
APP = ["coapboard-app", "0.1.0"]  # the deployed app files, as tools.run's config names them
NAME = "twin-device"


def prepare():
    """The twin and the firmware's .mpy (each built only when missing or older than its
    source)."""
    twin.build()
    simdevice.deployed()


def trouble(line):
    return any(t in line for t in TROUBLE) or deaf(line)


def deaf(line):
    # "I telemetry: spooled (N waiting)": tbsim is local and drops nothing, so DEAF messages in
    # a row without an answer mean the device hears nothing more (a client out of memory drops
    # what it receives, and the firmware does not print its log)
    head = "I telemetry: spooled ("
    return line.startswith(head) and int(line[len(head) :].split()[0]) >= DEAF


class Device(Firmware):
    """The firmware on the twin with heap_k KB: main.py, or with cycles > 0 the driver, which
    stops the device (status 0) after that many cycles and `rpcs` RPCs served."""

    def __init__(self, root, heap_k, cycles=0, rpcs=0):
        args = ["--twin", str(heap_k)]
        if cycles:
            # bench/fw_device.py's CYCLES, WARM, MIN_RPCS, EVERY
            write_json(Path(root) / "fw_device.json", [cycles, cycles, rpcs, 1])
            args += ["--main", str(FW_MAIN)]
        super().__init__(root, *args)

    def wait(self, text, timeout=30.0, after=0):
        """The first line from index after that contains text; fails at the first line that
        shows trouble, when the output ends or when the time is up, saying which."""
        seen = []

        def watched(line):
            if trouble(line):
                seen.append(line)
                return True
            return text in line

        try:
            line = self.wait_line(watched, timeout, after)
        except AssertionError:  # the time is up, or the output ended
            line = None
        if line is None or seen:
            late = "no %r within %s s" % (text, timeout)
            why = self.trouble() or (late if self.running() else "stopped before %r" % text)
            raise AssertionError("device: %s\n%s" % (why, self.tail()))
        return line

    def check(self):
        why = self.trouble()
        assert why is None, "device: %s\n%s" % (why, self.tail())
        assert self.running(), "device stopped:\n%s" % self.tail()

    def trouble(self):
        """The first line that shows trouble (None: none); for a traceback, the exception it
        ends with, once that is out."""
        lines = self.grep(lambda s: True)
        at = next((i for i, s in enumerate(lines) if trouble(s)), None)
        if at is not None and deaf(lines[at]):
            return "no answer to %d telemetry messages in a row (%s)" % (DEAF, lines[at])
        if at is None or not lines[at].startswith(("Traceback", "Task exception")):
            return None if at is None else lines[at]
        inside = [lines[at].startswith("Traceback")]

        def end(line):  # the first line after "Traceback" that is not indented
            if line.startswith("Traceback"):
                inside[0] = True
                return False
            return inside[0] and not line.startswith(" ")

        try:
            return self.wait_line(end, 5, at + 1)
        except AssertionError:  # the output ended inside it
            return lines[at]

    def until(self, fn, timeout=30.0, what="condition"):
        """until() on tbsim's state, failing as soon as the device is in trouble."""
        return until(lambda: self.check() or fn(), timeout, what)

    def results(self):
        # the driver's "key value" lines, once it has stopped
        keys = ("cycles", "sent", "spooled", "rpcs")
        got = self.grep(lambda s: s.split(" ")[0] in keys and s.split(" ")[-1].isdigit())
        return {k: int(v) for k, v in (s.split(" ") for s in got)}


class Rig:
    """tbsim in this process, a DTLS front for it when asked, and the device of one scenario,
    under work; payload "json" or "protobuf" (a PROTOBUF profile, tests/e2e/conftest.py)."""

    def __init__(self, work, payload="json"):
        self.work = Path(work)
        # tbsim's events (exchanges, notifications, RPCs) go to a file a failure shows
        self.events = open(self.work / "tbsim.log", "w")
        self.sim = start_sim(self.work / "tbsim", log=EventLog(self.events))
        self.payload = Payload(payload)
        self.dev = None
        self.front = None

    def close(self):
        if self.dev:
            self.dev.stop()
        if self.front:
            os.killpg(self.front.pid, signal.SIGTERM)  # socat and its children
            self.front.wait(10)
        self.sim.stop()
        self.events.close()

    def events_tail(self, n=40):
        """tbsim's last n events, for a failure's message."""
        self.events.flush()
        lines = (self.work / "tbsim.log").read_text().splitlines()
        return "\n".join(["tbsim:"] + lines[-n:])

    def device_id(self):
        sim = self.sim
        return sim.create_device(NAME, token=TOKEN, profile_id=self.payload.profile_id(sim))["id"]

    def boot(self, heap_k, cfg, cycles=0, rpcs=0):
        root = self.work / "device"
        root.mkdir()
        # as esptool leaves a board: the simulation's first-use flash is not the firmware's
        partition_sim.flash(str(root))
        cfg = self.payload.install(root, cfg)
        (root / "config.json").write_text(json.dumps(cfg))
        self.dev = Device(root, heap_k, cycles, rpcs)
        return self.dev

    def coaps(self, cfg):
        """cfg over coaps, through a DTLS front for tbsim: socat (OpenSSL) ends each device's
        DTLS session with the test CA's server certificate and relays its datagrams to tbsim.
        The device checks the server against the CA and keeps its token (tbsim has no X.509)."""
        pki = Pki(self.work / "pki")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dtls = "OPENSSL-DTLS-SERVER:%d,bind=127.0.0.1,fork,cert=%s,key=%s,verify=0"
        self.front = subprocess.Popen(
            ["socat", dtls % (port, pki.server.pem, pki.server.key_pem)]
            + ["UDP:127.0.0.1:%d" % self.sim.coap_port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_bound(port, self.front)
        cfg["server"].update(port=port, coaps=True, ca=str(pki.ca.der))
        return cfg


class Load(threading.Thread):
    """What a dashboard does while the device runs: `count` RPCs one after the other, pin 26 on
    and off and the GPIO widget's status, and before every 10th RPC a new telemetry_interval
    (the attributes observation). Every reply is checked; the first failure ends the load."""

    def __init__(self, rig, did, count):
        super().__init__(daemon=True)
        self.sim, self.payload, self.did, self.count = rig.sim, rig.payload, did, count
        self.intervals = []  # telemetry_interval values sent
        self.answered = 0
        self.wrong = None  # (method, what came back) of the first RPC not answered right

    def run(self):
        p = self.payload
        for i in range(1, self.count + 1):
            if i % 10 == 0:
                self.intervals.append(1 + i // 10)
                self.sim.set_shared(self.did, {"telemetry_interval": self.intervals[-1]})
            if i % 4:
                method, params, want = "setGpio", {"pin": 26, "value": i % 2}, None
            else:  # the pin as the setGpio before left it
                method, params, want = "getGpioStatus", None, bool((i - 1) % 2)
            try:
                got = p.reply(self.sim.rpc(self.did, method, p.params(params), timeout=10))
            except Exception as e:  # no reply, or tbsim stopped
                got = repr(e)
            if params:
                right = got == params
            else:
                right = isinstance(got, dict) and got.get("26") is want
            if not right:
                self.wrong = (method, got)
                return
            self.answered += 1


def provisioning(rig, heap_k):
    """First boot without a token: the device provisions itself with the profile's key and
    secret, keeps the token in config.json and reports with it."""
    sim = rig.sim
    key, secret = "TWIN_PROVISION_KEY", "TWIN_PROVISION_SECRET"
    profile = {"name": "field", "provision_type": "ALLOW_CREATE_NEW_DEVICES"}
    profile.update(provision_key=key, provision_secret=secret, transport=rig.payload.transport())
    sim.call(sim.store.save_profile, profile)
    cfg = make_config(sim)
    del cfg["token"]
    cfg["provisioning"] = {"device_name": NAME, "key": key, "secret": secret}
    dev = rig.boot(heap_k, cfg)
    dev.wait("provisioned; token stored in config.json")
    new = sim.call(sim.store.device_by_name, NAME)
    token = sim.call(sim.store.credentials, new["id"])["credentials_id"]
    assert json.loads((dev.root / "config.json").read_text())["token"] == token
    dev.wait("I app: reporting to")  # its boot attributes are in
    got = dev.until(lambda: _values(rig, new["id"], 3), what="3 telemetry messages")
    assert got == list(range(len(got)))  # every message once, none lost
    dev.check()


def _values(rig, did, n):
    # the SEQ values tbsim stored, once there are n
    got = [v for _, v in rows(rig.sim, did, rig.payload.key(SEQ))]
    return got if len(got) >= n else None


def cycles(rig, heap_k, n, rpcs):
    """n telemetry cycles as fast as they go, while `rpcs` RPCs and a telemetry_interval change
    every 10th RPC come in (Load): both observations in use all along."""
    did = rig.device_id()
    dev = rig.boot(heap_k, make_config(rig.sim), cycles=n, rpcs=rpcs)
    dev.wait("I app: reporting to")  # up: a failing boot shows here, not as RPC timeouts
    load = Load(rig, did, rpcs)
    load.start()
    load.join(30 + n / 10)
    # the device waits for all the RPCs: a lost one would leave it running
    if load.wrong or load.is_alive():
        why = load.wrong and "RPC %s answered %r" % load.wrong
        what = dev.trouble() or why or "RPCs stuck"
        raise AssertionError("device: %s\n%s\n%s" % (what, dev.tail(), rig.events_tail()))
    dev.wait("simdevice: stopped (status 0)")
    r = dev.results()
    assert r["cycles"] >= n and r["sent"] == r["cycles"] and r["spooled"] == 0, r
    assert r["rpcs"] == rpcs, r
    got = [v for _, v in rows(rig.sim, did, rig.payload.key(SEQ))]
    assert got == list(range(r["sent"])), "tbsim holds %d of %d messages" % (len(got), r["sent"])
    changes = dev.grep("I app: telemetry interval now")
    assert [int(s.split()[-2]) for s in changes] == load.intervals


def firmware_update(rig, heap_k, size, coaps=False):
    """Telemetry stored, then a firmware image of `size` bytes assigned: downloaded, verified,
    installed, booted and confirmed (fw_state up to UPDATED), byte for byte in ota_1."""
    sim, k = rig.sim, rig.payload.key
    did = rig.device_id()
    cfg = make_config(sim)
    dev = rig.boot(heap_k, rig.coaps(cfg) if coaps else cfg)
    if coaps:
        dev.wait("I dtls: DTLS session up")
    dev.wait("I app: reporting to")
    dev.until(lambda: current(sim, did, k=k) == OLD, what="the boot report")
    dev.until(lambda: _values(rig, did, 2), what="telemetry")
    img = _image(size)
    sim.assign_ota(did, sim.add_ota("coapboard", "0.2.0", img))
    dev.wait("coapboard 0.2.0 installed: resetting into it", timeout=30 + size / 20000)
    dev.wait("coapboard 0.2.0 confirmed")
    dev.until(lambda: states(sim, did, k=k) == UPDATED, what="fw_state UPDATED")
    assert current(sim, did, k=k) == ["coapboard", "0.2.0"]
    assert slot(dev.root, 1)[:size] == img
    dev.check()


@lru_cache(maxsize=2)
def _image(size):
    return image(size)


def bundle_update(rig, heap_k):
    """This checkout's lib/ and firmware/ as an app bundle of the twin's .mpy, version 0.2.0:
    downloaded, unpacked into app slot a, booted from it and confirmed (sw_state UPDATED)."""
    sim = rig.sim
    did = rig.device_id()
    dev = rig.boot(heap_k, make_config(sim))
    dev.wait("I app: reporting to")
    dev.until(lambda: current(sim, did, "sw") == APP, what="the sw boot report")
    data = bundle.build(True, twin.OUT / "mpy", twin.MPY_CROSS)
    pid = sim.add_ota(APP[0], "0.2.0", data, ota_type="SOFTWARE")
    sim.assign_ota(did, pid, "SOFTWARE")
    dev.wait("%s 0.2.0 installed: resetting into it" % APP[0])
    dev.wait("%s 0.2.0 confirmed" % APP[0])
    dev.until(lambda: states(sim, did, "sw") == UPDATED, what="sw_state UPDATED")
    assert current(sim, did, "sw") == [APP[0], "0.2.0"]
    st = json.loads((dev.root / "apps" / "slot.json").read_text())
    assert st == {"run": "a", "prev": "", "state": "valid"}
    assert (dev.root / "apps" / "a" / "firmware" / "app.mpy").exists()
    dev.check()


def sleep_wakes(rig, heap_k, wakes):
    """Power mode sleep: the board wakes every 2 s; while it sleeps a setGpio is sent, which the
    next wake serves (the reply checked) besides posting its reading."""
    sim = rig.sim
    did = rig.device_id()
    cfg = make_config(sim)
    cfg["telemetry"]["interval_s"] = 2
    cfg["power"] = {"mode": "sleep", "awake_max_s": 10, "listen_ms": 100}
    dev = rig.boot(heap_k, cfg)
    at = 0
    for i in range(wakes):
        # a wake's "deep sleep" line can be the same text as the last one's: the mark, not the
        # line's first index, says where the next wake begins
        dev.wait("board: deep sleep", after=at)
        at = dev.mark()
        params = {"pin": 26, "value": (i + 1) % 2}
        got = rig.payload.reply(sim.rpc(did, "setGpio", params, timeout=30))
        assert got == params, got
    dev.wait("board: deep sleep", after=at)
    dev.until(lambda: len(rows(sim, did, "wake_reason")) > wakes, what="a reading each wake")
    dev.check()
