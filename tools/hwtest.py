"""A hardware check for makers with a board: deploys the firmware with a test config, runs tbsim
on this host's LAN address, and checks the board against it, ending with a pass/fail table:

  deploy     the firmware and the test config are on the board, and it starts
  boot       it reports to tbsim: its client attributes (fw_version, board, ip)
  telemetry  two telemetry messages are stored
  gpio       setGpio drives the test pin (an output) to 1, getGpio reads 1 back
  reset      a reboot RPC: the board comes back, reporting reset_cause hard_reset
  sw-rollback  a software update that cannot start (an app bundle whose firmware/app.py
             raises) is installed, fails on trial and is rolled back: FAILED "rolled back",
             and the board reports telemetry again
  fw-rollback  a firmware update (--firmware: a MicroPython image the board boots, such as
             the one `make flash` wrote) whose trial cannot pass: once the board reports
             UPDATING and resets into it, tbsim stops answering (the board's messages still
             arrive), so no telemetry is acknowledged within the self-test's time; the board
             must reset back into its previous image by itself and report FAILED "rolled
             back", then, tbsim answering again, telemetry

A check that fails skips those that need it. The board's log is shown as "board| ...".

  make hwtest PORT=/dev/ttyUSB0 SSID=workshop PASSWORD=secret \
      FIRMWARE=ESP32_GENERIC-OTA-<date>-<version>.bin [PIN=26] [HOST=192.168.1.10]
  python -m tools.hwtest --port /dev/ttyUSB0 --ssid workshop --password secret \
      --firmware ESP32_GENERIC-OTA-<date>-<version>.bin

The board must reach this host on udp/COAP_PORT (default 5683): same LAN, no firewall between.
Pick a test pin with nothing wired to it (it is driven high).
"""

import argparse
import json
import socket
import sys
import tempfile
import threading
import time

from firmware import config as fwconfig
from tools import deploy
from tools.table import aligned

CHECKS = ("deploy", "boot", "telemetry", "gpio", "reset", "sw-rollback", "fw-rollback")
NAME = "hwtest"
SW = ("coapboard-app", "0.1.0")  # the deployed app's title and version (the config's default)
FW = "coapboard"  # the firmware's title (the config's default)
VERSION = "0.0.0-hwtest"  # of the packages the rollback checks assign
SELF_TEST_S = 30  # an image or app on trial must get telemetry acknowledged within this


def lan_address():
    """The address this host has on the route out: the one a board on the LAN reaches it at
    (a UDP connect sends nothing)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    finally:
        s.close()


def test_config(host, port, token, ssid, password, pin):
    return {
        "wifi": {"ssid": ssid, "password": password},
        "server": {"host": host, "port": port},
        "token": token,
        "telemetry": {"interval_s": 2},
        "sensors": [{"type": "chip_temp", "key": "chip_temp"}],
        "gpio": [{"name": NAME, "pin": pin, "direction": "out"}],
        "ota": {"self_test_s": SELF_TEST_S},
        "log_level": "info",
    }


def broken_bundle():
    """This checkout's app as a bundle (tools/bundle.py) whose firmware/app.py raises."""
    from tools import bundle

    files = bundle.unpack(bundle.build())
    bad = b'raise RuntimeError("hwtest: this app cannot start")\n'
    return bundle.pack([(p, bad if p == "firmware/app.py" else d) for p, d in files])


def until(fn, seconds):
    # fn's first true value within seconds, else None
    end = time.monotonic() + seconds
    while True:
        got = fn()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.2)


class Check:
    """One board against one tbsim; each method is a check -> (ok, detail)."""

    def __init__(self, sim, did, link, timeout, firmware=None):
        self.sim, self.did, self.link, self.timeout = sim, did, link, timeout
        self.firmware = firmware  # the image file fw_rollback updates to
        self.cut_at = None  # tbsim stops answering at the first board log line with this text

    def heard(self, line):
        # a line of the board's log (the echo thread)
        said = self.cut_at
        if said is not None and said in line:
            self.cut_at = None
            self._answer(False)

    def _answer(self, on):
        self.sim.call(self.sim.faults.configure, {"out": {"loss": 0.0 if on else 1.0}})

    def attrs(self):
        return self.sim.attributes(self.did, "CLIENT_SCOPE")

    def rows(self, key):
        hist = self.sim.call(self.sim.store.history, self.did, [key], 0, 1 << 62, 10000)
        return [r["value"] for r in reversed(hist.get(key, []))]

    def last(self, key, default=""):
        return (self.rows(key) or [default])[-1]

    def sent(self):
        # telemetry messages stored: each carries the chip temperature (raw on a classic ESP32)
        return max(len(self.rows("chip_temp")), len(self.rows("chip_temp_raw")))

    def more_telemetry(self, n=1):
        # n more telemetry messages stored within the timeout
        first = self.sent()
        return until(lambda: self.sent() >= first + n, self.timeout)

    def boot(self):
        a = until(
            lambda: (lambda a: a if "reset_cause" in a else None)(self.attrs()), self.timeout
        )
        if not a:
            return False, "no client attributes within %d s: see the board's log" % self.timeout
        return True, "%s %s on %s, ip %s, reset cause %s" % (
            a.get("fw_title"), a.get("fw_version"), a.get("board"), a.get("ip"),
            a.get("reset_cause"))  # fmt: skip

    def telemetry(self):
        if not self.more_telemetry(2):
            return False, "fewer than 2 telemetry messages within %d s" % self.timeout
        return True, "%d messages stored" % self.sent()

    def gpio(self):
        from tools.tbsim import RpcTimeout

        try:
            got = self.sim.rpc(self.did, "setGpio", {"pin": NAME, "value": 1}, timeout=20)
            back = self.sim.rpc(self.did, "getGpio", {"pin": NAME}, timeout=20)
        except RpcTimeout:
            return False, "no RPC reply within 20 s"
        if not isinstance(back, dict) or back.get("value") != 1:
            return False, "setGpio -> %s, then getGpio -> %s" % (json.dumps(got), json.dumps(back))
        return True, "setGpio 1, getGpio -> %s" % json.dumps(back)

    def reset(self):
        from tools.tbsim import RpcTimeout

        self.sim.call(self.sim.store.set_attributes, self.did, "CLIENT_SCOPE",
                      {"reset_cause": "?"})  # fmt: skip
        try:
            self.sim.rpc(self.did, "reboot", timeout=20)
        except RpcTimeout:
            return False, "no reply to the reboot RPC within 20 s"
        cause = until(lambda: (lambda c: c if c != "?" else None)(self.attrs().get("reset_cause")),
                      self.timeout)  # fmt: skip
        if cause != "hard_reset":
            return False, "after the reboot RPC: reset cause %s" % (cause or "not reported")
        return True, "back after a reset (reset cause hard_reset)"

    def sw_rollback(self):
        sim = self.sim
        pid = sim.add_ota(SW[0], VERSION, broken_bundle(), ota_type="SOFTWARE")
        sim.assign_ota(self.did, pid, "SOFTWARE")
        states = until(lambda: (lambda s: s if "FAILED" in s else None)(self.rows("sw_state")),
                       self.timeout * 3)  # fmt: skip
        sim.assign_ota(self.did, None, "SOFTWARE")  # the board stays on its own app
        if not states:
            return False, "no FAILED state within %d s: %s" % (
                self.timeout * 3,
                ", ".join(self.rows("sw_state")) or "no sw_state at all",
            )
        why = self.last("sw_error")
        if "rolled back" not in why:
            return False, "FAILED, but not rolled back: %s" % why
        if not self.more_telemetry():
            return False, "rolled back, but no telemetry after it"
        return True, "FAILED: %s" % why

    def fw_rollback(self):
        sim = self.sim
        try:
            with open(self.firmware, "rb") as f:
                image = f.read()
        except (OSError, TypeError) as e:
            return False, "no firmware image to update to (--firmware): %s" % e
        old = self.last("current_fw_version", "?")
        # the moment the board resets into the image, tbsim stops answering it: polling
        # tbsim for UPDATING would be too late for an image that boots in a second
        self.cut_at = "%s %s installed: resetting into it" % (FW, VERSION)
        sim.assign_ota(self.did, sim.add_ota(FW, VERSION, image), "FIRMWARE")
        try:
            return self._fw_trial(len(image), old)
        finally:
            self.cut_at = None
            self._answer(True)
            sim.assign_ota(self.did, None, "FIRMWARE")  # the board stays on its own image

    def _fw_trial(self, size, old):
        seconds = self.timeout + size // 4096  # a download of at least 4 KB/s

        def state(*wanted):
            return (lambda s: s[-1] if s and s[-1] in wanted else None)(self.rows("fw_state"))

        if not until(lambda: state("UPDATING", "FAILED"), seconds):
            return False, "not installed within %d s: %s" % (
                seconds, ", ".join(self.rows("fw_state")) or "no fw_state at all")  # fmt: skip
        if state("FAILED"):
            return False, "refused: %s" % self.last("fw_error")
        seconds = SELF_TEST_S + 2 * self.timeout  # the trial, a reset, a boot
        if not until(lambda: state("FAILED", "UPDATED"), seconds):
            return False, "no rollback within %d s (the self-test never reset the board)" % seconds
        why = self.last("fw_error")
        if state("UPDATED") or "rolled back" not in why:
            return False, "the image on trial was kept without an answer from tbsim: %s" % why
        self._answer(True)
        if not self.more_telemetry():
            return False, "rolled back, but no telemetry once tbsim answered again"
        back = self.last("current_fw_version", "?")
        if back != old:
            return False, "rolled back, but running firmware %s, not %s" % (back, old)
        return True, "FAILED: %s" % why


def run(port, ssid="", password="", host=None, pin=26, coap_port=5683, resume=False,
        timeout=60, log=print, firmware=None):  # fmt: skip
    """The checks on the board at port -> [(check, ok, detail)], one per CHECKS entry;
    firmware: the image file the fw-rollback check updates to."""
    from tools.link import Link, TransportError
    from tools.tbsim import TbSim

    host = host or lan_address()
    results = []
    data = tempfile.TemporaryDirectory(prefix="hwtest-")
    sim = TbSim(data.name, coap_port=coap_port, http_port=0, host=host, log=False).start()
    link = None
    try:
        dev = sim.create_device(NAME)
        cfg = test_config(host, sim.coap_port, dev["token"], ssid, password, pin)
        try:
            link = Link(port, resume)
            info = link.info()
            problems = fwconfig.validate(cfg, need_wifi=info["platform"] == "esp32")
            if problems:
                raise deploy.DeployError("test config: " + "; ".join(problems))
            files = deploy.collect(info, json.dumps(cfg, indent=2).encode() + b"\n")
            deploy.deploy(link, files, log=log)
            link.start()
            results.append(("deploy", True, "MicroPython %s (%s), tbsim on %s:%d" % (
                info["version"], info["platform"], host, sim.coap_port)))  # fmt: skip
        except (deploy.DeployError, TransportError, OSError) as e:
            results.append(("deploy", False, str(e)))
        else:
            c = Check(sim, dev["id"], link, timeout, firmware)
            threading.Thread(target=_echo, args=(link, log, c.heard), daemon=True).start()
            for name in CHECKS[1:]:
                ok, detail = getattr(c, name.replace("-", "_"))()
                results.append((name, ok, detail))
                if not ok:
                    break
        done = {r[0] for r in results}
        results += [(n, None, "skipped: an earlier check failed") for n in CHECKS if n not in done]
        return results
    finally:
        sim.stop()
        if link is not None:
            try:
                link.t.close()  # not link.close(): the firmware runs on, out of the raw REPL
            except OSError:
                pass
        data.cleanup()


def _echo(link, log, heard):
    try:
        for line in link.lines(24 * 3600):
            log("board| " + line)
            heard(line)
    except Exception:  # the port closed under us at the end
        pass


def table(results):
    rows = [(n, {True: "pass", False: "FAIL", None: "-"}[ok], d) for n, ok, d in results]
    out = aligned(("check", "result", "detail"), rows)
    passed = sum(1 for r in results if r[1])
    out.append("%d of %d checks passed" % (passed, len(results)))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--ssid", default="", help="Wi-Fi network name")
    ap.add_argument("--password", default="", help="Wi-Fi password")
    ap.add_argument(
        "--firmware", required=True, help="a MicroPython image the board boots (make flash's)"
    )
    ap.add_argument("--pin", type=int, default=26, help="a free output pin for the GPIO check")
    ap.add_argument("--host", help="this host's address as the board reaches it (default: LAN)")
    ap.add_argument("--coap-port", type=int, default=5683, help="tbsim's CoAP port")
    ap.add_argument("--timeout", type=int, default=60, help="seconds each check may take")
    ap.add_argument("--resume", action="store_true", help="no soft reset on connect (unix port)")
    a = ap.parse_args(argv)
    results = run(a.port, a.ssid, a.password, a.host, a.pin, a.coap_port, a.resume, a.timeout,
                  firmware=a.firmware)  # fmt: skip
    print(table(results), flush=True)
    return 0 if all(r[1] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
