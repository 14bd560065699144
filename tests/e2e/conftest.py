# Fixtures for the end-to-end tests: the real firmware (main.py) on the MicroPython unix port
# with the simulated board, started by tools/simdevice.py like a powered board, against tbsim
# running in this process on ephemeral loopback ports.
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.protoschema import json_name, profile
from tools.run import sample_config
from tools.tbsim import TbSim

REPO = Path(__file__).resolve().parents[2]
TOKEN = "E2E_DEVICE_TOKEN_0001"
SEQ = "seq"  # a sim sensor that counts 0, 1, 2 ... one per telemetry message


def until(fn, timeout=10.0, what="condition"):
    """Poll fn until it returns something truthy (and return that); fail after timeout.
    Only for server-side state, which has no event to wait on."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                "timed out after %s s waiting for %s (last: %r)" % (timeout, what, got)
            )
        time.sleep(0.05)


def start_sim(data_dir, coap_port=0, log=False, **kw):
    return TbSim(str(data_dir), coap_port=coap_port, http_port=0, log=log, **kw).start()


@pytest.fixture
def tbsim_dir(tmp_path):
    return tmp_path / "tbsim"


@pytest.fixture
def sim(tbsim_dir):
    s = start_sim(tbsim_dir)
    yield s
    s.stop()


# The firmware's keys as a PROTOBUF device profile's schemas (the RPC ones: ThingsBoard's)
FW_TELEMETRY = """syntax = "proto3";
package coapboard;

message Telemetry {
  optional int64 ts = 1;
  Values values = 2;

  message Values {
    optional double chip_temp = 1;
    optional double temperature = 2;
    optional double air_temperature = 3;
    optional double air_humidity = 4;
    optional double soil = 5;
    optional int32 soil_raw = 6;
    optional int32 spool_dropped = 7;
    optional string air_dht22_error = 8;
    optional double seq = 9;
    optional string current_fw_title = 10;
    optional string current_fw_version = 11;
    optional string fw_state = 12;
    optional string fw_error = 13;
    optional string current_sw_title = 14;
    optional string current_sw_version = 15;
    optional string sw_state = 16;
    optional string sw_error = 17;
  }
}
"""
FW_ATTRIBUTES = """syntax = "proto3";
package coapboard;

message Attributes {
  optional string fw_title = 1;
  optional string fw_version = 2;
  optional string board = 3;
  optional string mac = 4;
  optional string ip = 5;
  optional int32 free_heap = 6;
  optional string reset_cause = 7;
  optional int32 gpio_pump = 8;
  optional int32 gpio_fan = 9;
  optional int32 gpio_door = 10;
}
"""


class Payload:
    """One payload mode of the firmware and tbsim: "json" (the default profile) or
    "protobuf" (a PROTOBUF profile, the firmware with server.payload "protobuf"). Tests say
    keys, RPC params and RPC replies through it, so one test body serves both."""

    def __init__(self, name):
        self.name = name
        self.proto = name == "protobuf"
        self._profile = None

    def transport(self):
        if not self.proto:
            return None
        conf = {"transportPayloadType": "PROTOBUF", "deviceTelemetryProtoSchema": FW_TELEMETRY}
        conf["deviceAttributesProtoSchema"] = FW_ATTRIBUTES
        return {
            "type": "COAP",
            "coapDeviceTypeConfiguration": {"transportPayloadTypeConfiguration": conf},
        }

    def profile_id(self, sim):
        # the PROTOBUF profile devices go in; None: tbsim's default (JSON)
        if self.proto and self._profile is None:
            p = {"name": "protobuf", "transport": self.transport()}
            self._profile = sim.call(sim.store.save_profile, p)["id"]
        return self._profile

    def key(self, key):
        # the key ThingsBoard stores: a protobuf field goes by its JSON name
        return json_name(key) if self.proto else key

    def params(self, params):
        # ThingsBoard's default RPC request schema carries params as JSON text
        if self.proto and params is not None and not isinstance(params, str):
            return json.dumps(params)
        return params

    def reply(self, reply):
        # ... and the default RPC response schema the reply as JSON text in "payload"
        return json.loads(reply["payload"]) if self.proto else reply

    def install(self, root, cfg):
        # the firmware side: its config switched to protobuf, the schema file beside it
        if self.proto and isinstance(cfg, dict):
            desc = profile({"telemetry": FW_TELEMETRY, "attributes": FW_ATTRIBUTES})[0]
            (Path(root) / "proto.json").write_text(json.dumps(desc))
            cfg = dict(cfg, server=dict(cfg["server"], payload="protobuf", schema="proto.json"))
        return cfg


BOTH = pytest.mark.parametrize("payload", ["json", "protobuf"], indirect=True)


@pytest.fixture
def payload(request):
    """The payload mode: "json" unless a test is marked BOTH."""
    return Payload(getattr(request, "param", "json"))


@pytest.fixture
def dev(sim, payload):
    return sim.create_device("e2e-device", token=TOKEN, profile_id=payload.profile_id(sim))


@pytest.fixture
def device_root(tmp_path):
    root = tmp_path / "device"
    root.mkdir()
    return root


def make_config(sim, token=TOKEN, **changes):
    """tools.run's sample config for this tbsim, with a 1 s interval, a counter sensor (SEQ)
    and quick observation refreshes; top-level keys in changes replace the sample's."""
    cfg = sample_config(sim.coap_port, token)
    cfg["server"]["observe_refresh_s"] = 10
    cfg["telemetry"]["interval_s"] = 1
    cfg["sensors"].append({"type": "sim", "key": SEQ, "min": 0, "max": 1000000, "step": 1})
    cfg["gpio"].append({"name": "fan", "pin": 27, "direction": "out", "invert": True})
    cfg.update(changes)
    return cfg


def write_json(path, value):
    # whole-file replace, as board/sim.py expects from other processes
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class Firmware:
    """python -m tools.simdevice ROOT as a child process group; its output lines are
    collected by a thread and can be waited for."""

    def __init__(self, root, *args):
        self.root = Path(root)
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.simdevice", str(root), *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stop() kills the firmware too
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)  # end of output
            self._cond.notify_all()

    def mark(self):
        """The index of the next line: pass it as after= to wait for lines from now on."""
        with self._cond:
            return len([x for x in self.lines if x is not None])

    def output(self):
        return "\n".join(x for x in self.lines if x is not None)

    def wait_line(self, match, timeout=15.0, after=0):
        """The first line at index >= after that contains match (a string) or for which
        match(line) is true; fails after timeout or when the output ends."""
        test = match if callable(match) else (lambda s: match in s)
        deadline = time.monotonic() + timeout
        i = after
        with self._cond:
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if line is None:
                        raise AssertionError("output ended without %r:\n%s" % (match, self.tail()))
                    if test(line):
                        return line
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "no line %r within %s s:\n%s" % (match, timeout, self.tail())
                    )
                self._cond.wait(left)

    def wait_lines(self, match, n, timeout=15.0, after=0):
        """The first n lines at index >= after that match (as in wait_line)."""
        test = match if callable(match) else (lambda s: match in s)
        found = []

        def nth(line):
            if test(line):
                found.append(line)
            return len(found) >= n

        self.wait_line(nth, timeout, after)
        return found

    def grep(self, match, after=0):
        test = match if callable(match) else (lambda s: match in s)
        with self._cond:
            return [x for x in self.lines[after:] if x is not None and test(x)]

    def tail(self, n=40):
        return "\n".join(x for x in self.lines[-n:] if x is not None)

    def wait_exit(self, timeout=15.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            msg = "still running after %s s:\n%s" % (timeout, self.tail())
            raise AssertionError(msg) from None

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self._reader.join(5)

    def pins(self):
        try:
            return json.loads((self.root / "pins.json").read_text())
        except FileNotFoundError:
            return {}


@pytest.fixture
def firmware(payload):
    """firmware(root, cfg) writes root/config.json (a dict as JSON, a str as it is; in
    protobuf mode switched to it) and boots the device; every one started is killed at
    teardown."""
    started = []

    def start(root, cfg=None, *args):
        cfg = payload.install(root, cfg)
        if cfg is not None:
            text = cfg if isinstance(cfg, str) else json.dumps(cfg)
            (Path(root) / "config.json").write_text(text)
        fw = Firmware(root, *args)
        started.append(fw)
        return fw

    yield start
    for fw in started:
        fw.stop()


# tbsim state


def rows(sim, did, key=SEQ):
    """(ts, value) of the key's stored telemetry in insertion order (sqlite rowid)."""
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT ts, value FROM telemetry WHERE device_id=? AND key=? ORDER BY rowid",
            (did, key),
        ).fetchall()
    )
    return [(ts, json.loads(v)) for ts, v in got]


def wait_rows(sim, did, n, key=SEQ, timeout=20.0):
    """The key's rows once there are at least n."""
    return until(
        lambda: (lambda r: r if len(r) >= n else None)(rows(sim, did, key)),
        timeout,
        "%d rows of %s" % (n, key),
    )


def client_attrs(sim, did):
    return sim.attributes(did, "CLIENT_SCOPE")


def latest(sim, did):
    """{key: value} of the newest message (all keys with the newest ts)."""
    got = sim.call(
        lambda: sim.store.db.execute(
            "SELECT key, value FROM telemetry WHERE device_id=? AND ts ="
            " (SELECT MAX(ts) FROM telemetry WHERE device_id=?)",
            (did, did),
        ).fetchall()
    )
    return {k: json.loads(v) for k, v in got}
