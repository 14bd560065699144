"""Provision boards in the field: write a device's config.json from arguments or from one row of
a CSV file, check it with the firmware's own rules, deploy it (with the firmware, copying only
what the board lacks), start the board and watch its log until it reports to the server, or
say what failed: config, Wi-Fi, DNS, server unreachable, bad token, provisioning refused, crash.

  python -m tools.provision --port /dev/ttyUSB0 --name greenhouse-01 --token TOKEN \\
      --ssid workshop --password secret --server thingsboard.example.com
  python -m tools.provision --port /dev/ttyUSB0 --csv boards.csv --row greenhouse-01
  python -m tools.provision --csv boards.csv --batch --port /dev/ttyUSB0

The CSV has a header row with these columns (any order; empty cells are allowed):
  name, token, provision_key, provision_secret, wifi_ssid, wifi_password,
  server (host or host:port), port (the board's serial port; default --port)
A device gets either a token or a provision key and secret (the board then provisions itself
under its name). --batch walks every row board by board and ends with a summary table.
"""

import argparse
import copy
import csv
import json
import re
import sys
from pathlib import Path

from firmware import config as fwconfig
from tools import deploy
from tools.table import aligned

COLUMNS = (
    "name",
    "token",
    "provision_key",
    "provision_secret",
    "wifi_ssid",
    "wifi_password",
    "server",
    "port",
)
# the config of a board with no template: one sensor every ESP32 has
TEMPLATE = {"sensors": [{"type": "chip_temp", "key": "chip_temp"}]}
WIFI_TRIES = 3  # failed joins before "Wi-Fi not joined" is the verdict
# how long to wait for a board's report: longer than one CoAP exchange (about 93 s, a message
# ID kept until the server answers) after a slow Wi-Fi join
TIMEOUT_S = 120


class InputError(Exception):
    pass


# --- the device's settings


def parse_server(text):
    """ "host", "host:port" or "[IPv6 address]:port" -> (host, port or None)."""
    text = text.strip()
    port = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if rest[0] != ":":
                raise InputError('server: expected "[address]:port", got "%s"' % text)
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address or a bare IPv6 address
        host = text
    if not host:
        raise InputError('server: expected "host" or "host:port", got "%s"' % text)
    if port is None:
        return host, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError('server: expected a port 1-65535 after "%s:", got "%s"' % (host, port))
    return host, int(port)


def device_config(fields, template=TEMPLATE):
    """The config.json of one device: the template with the device's Wi-Fi, server and
    credentials. fields: the CSV columns (name, token, ...). Raises InputError."""
    f = {k: (v or "").strip() for k, v in fields.items()}
    if f.get("token") and (f.get("provision_key") or f.get("provision_secret")):
        raise InputError("give a token or a provision key and secret, not both")
    if not f.get("token"):
        missing = [k for k in ("provision_key", "provision_secret") if not f.get(k)]
        if len(missing) == 2:
            raise InputError("token: missing (or give provision_key and provision_secret)")
        if missing:
            raise InputError("%s: missing, provisioning needs both key and secret" % missing[0])
    if not f.get("server"):
        raise InputError("server: missing, expected the ThingsBoard host (host or host:port)")
    host, port = parse_server(f["server"])
    cfg = copy.deepcopy(template)
    cfg["wifi"] = {"ssid": f.get("wifi_ssid", ""), "password": f.get("wifi_password", "")}
    server = {k: v for k, v in cfg.get("server", {}).items() if k != "port"}
    server["host"] = host
    if port is not None:
        server["port"] = port
    cfg["server"] = server
    cfg.pop("token", None)
    cfg.pop("provisioning", None)
    if f.get("token"):
        cfg["token"] = f["token"]
    else:
        cfg["provisioning"] = {
            "device_name": f.get("name", ""),
            "key": f["provision_key"],
            "secret": f["provision_secret"],
        }
    return cfg


def check(cfg):
    """The firmware's own rules, for an ESP32 (Wi-Fi required)."""
    problems = fwconfig.validate(cfg, need_wifi=True)
    if problems:
        raise InputError("\n".join(problems))
    return cfg


def read_csv(path):
    """The rows of a provisioning CSV as dicts, with its line numbers; raises InputError for a
    file that cannot be used (unknown or missing columns, rows without a name, repeats)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or ()]
            unknown = [h for h in header if h not in COLUMNS]
            if unknown:
                raise InputError(
                    "%s: unknown column %s (expected some of: %s)"
                    % (path, ", ".join('"%s"' % u for u in unknown), ", ".join(COLUMNS))
                )
            if "name" not in header or "server" not in header:
                raise InputError(
                    '%s: expected a header row with at least "name" and "server"' % path
                )
            rows, names = [], {}
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise InputError("%s line %d: more cells than columns" % (path, line))
                row = {k.strip(): (v or "").strip() for k, v in row.items()}
                if not any(row.values()):
                    continue  # a blank line
                name = row["name"]
                if not name:
                    raise InputError("%s line %d: name: missing" % (path, line))
                if name in names:
                    raise InputError(
                        '%s line %d: name "%s" is already used on line %d'
                        % (path, line, name, names[name])
                    )
                names[name] = line
                rows.append((line, row))
            return rows
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror)) from None
    except UnicodeDecodeError as e:
        raise InputError(
            "%s: not UTF-8 text (a byte 0x%02x): save it as CSV in UTF-8 (in Excel: "
            '"CSV UTF-8"; in LibreOffice: character set "Unicode (UTF-8)")'
            % (path, e.object[e.start])
        ) from None


# --- watching the board


def diagnose(lines, cfg):
    """Read the board's log lines until it reports to the server or surely cannot.
    -> (True, "reporting to host:port") or (False, what failed and what to do)."""
    server = cfg["server"]
    where = "%s:%s" % (server["host"], server.get("port", 5683))
    last = None  # the last warning, for when the board just goes quiet
    joins = 0
    config = []
    crashed = False
    provisioned = ""
    for line in lines:
        if config and not line.startswith("E app: config:"):
            break
        if crashed:
            if line.startswith(" "):  # the traceback's frames; its last line says what
                continue
            return False, "the firmware crashed: %s" % line
        m = re.search(r"I app: reporting to (\S+)", line)
        if m:
            return True, "reporting to %s%s" % (m.group(1), provisioned)
        if "I app: provisioned" in line:
            provisioned = " (provisioned, token stored on the board)"
        elif line.startswith("Traceback (most recent call last)"):
            crashed = True
        elif line.startswith("E app: config:"):
            config.append(line[len("E app: config:") :].strip())
        elif re.search(r"W board: network .* not joined", line):
            joins += 1
            last = (
                'Wi-Fi not joined: network "%s" (%d attempts): check wifi_ssid and '
                "wifi_password, that it is a 2.4 GHz network, and the signal where the board is"
                % (cfg["wifi"]["ssid"], joins)
            )
            if joins >= WIFI_TRIES:
                return False, last
        elif "DNS lookup failed" in line:
            return False, (
                'DNS: the board cannot look up the server "%s" (%s): check the server name, '
                "or give its IP address" % (server["host"], line.split("failed", 1)[1].strip(" ,"))
            )
        elif re.match(r"[WE] .*\b4\.01 ", line):
            return False, (
                "bad token: the server does not know this access token (4.01): copy the "
                "device's access token from ThingsBoard again"
            )
        elif "provisioning failed:" in line and re.search(r"failed: \d\.\d\d ", line):
            why = line.split("failed:", 1)[1].strip()
            if "FAILURE" in why:
                fix = (
                    "the name is already taken (a profile that creates devices), or is no "
                    "pre-provisioned device, or was provisioned before: use another name or "
                    "prepare the device in ThingsBoard"
                )
            else:
                fix = (
                    "check provision_key and provision_secret against the device profile, and "
                    "that provisioning is enabled there"
                )
            return False, "provisioning refused (%s): %s" % (why, fix)
        elif re.search(r"no ACK after \d+ transmissions|no response within|ECONNREFUSED", line):
            # CoAP gave up (a message keeps trying for about 93 s), or the host said at once
            # that nothing listens on that port (ICMP port unreachable)
            return False, (
                "server unreachable: no CoAP answer from %s: check the server address and port, "
                "that ThingsBoard's CoAP transport is enabled, and that udp/%s is open"
                % (where, server.get("port", 5683))
            )
        elif line[:2] in ("W ", "E "):
            last = line
    if config:
        return False, "the firmware rejected its config: %s" % "; ".join(config)
    return False, last or "no report from the board (its log shows no problem either)"


# --- one board


def provision_one(
    cfg, port, resume=False, timeout=TIMEOUT_S, config_only=False, build=deploy.BUILD, log=print
):
    """Deploy cfg (and the firmware) to the board on port, start it, watch it.
    -> (ok, message)."""
    from tools.link import Link, PortError, TransportError

    try:
        link = Link(port, resume)
    except PortError as e:
        return False, str(e)
    except TransportError as e:
        return False, "cannot talk to MicroPython on %s: %s (is it flashed? make flash)" % (
            port,
            e,
        )
    try:
        info = link.info()
        data = json.dumps(cfg, indent=2).encode() + b"\n"
        if config_only:
            files = {"config.json": data}
        else:
            files = deploy.collect(info, data, out=build)
        deploy.deploy(link, files, log=log)
        link.start()
        return diagnose(_echo(link.lines(timeout), log), cfg)
    except deploy.DeployError as e:
        return False, str(e)
    except (TransportError, OSError) as e:  # unplugged, reset, another program took the port
        return False, "the board stopped answering on %s: %s" % (port, e)
    finally:
        try:
            link.close()
        except OSError:
            pass


def _echo(lines, log):
    for line in lines:
        log("board| " + line)
        yield line


# --- command line


def _fields(a):
    return {
        "name": a.name,
        "token": a.token,
        "provision_key": a.provision_key,
        "provision_secret": a.provision_secret,
        "wifi_ssid": a.ssid,
        "wifi_password": a.password,
        "server": a.server,
        "port": a.port,
    }


def _template(path):
    if not path:
        return TEMPLATE
    try:
        t = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError("template %s: %s" % (path, e.strerror)) from None
    except ValueError as e:
        raise InputError("template %s: invalid JSON (%s)" % (path, e)) from None
    if not isinstance(t, dict):
        raise InputError("template %s: expected a JSON object" % path)
    return t


def table(results):
    rows = [(n, p or "-", "ok" if ok else "FAILED", d) for n, p, ok, d in results]
    out = aligned(("name", "port", "result", "detail"), rows)
    good = sum(1 for r in results if r[2])
    out.append("%d boards: %d ok, %d failed" % (len(results), good, len(results) - good))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", default="", help="the board's serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--name", default="", help="device name (used when provisioning)")
    ap.add_argument("--token", default="", help="the device's ThingsBoard access token")
    ap.add_argument("--provision-key", default="", help="device profile's provision key")
    ap.add_argument("--provision-secret", default="", help="device profile's provision secret")
    ap.add_argument("--ssid", default="", help="Wi-Fi network name")
    ap.add_argument("--password", default="", help="Wi-Fi password")
    ap.add_argument("--server", default="", help="ThingsBoard host or host:port")
    ap.add_argument("--csv", help="a CSV with one row per device (see above)")
    ap.add_argument("--row", help="with --csv: the name of the device to provision")
    ap.add_argument("--batch", action="store_true", help="with --csv: every row, one by one")
    ap.add_argument("--template", help="config.json to start from: sensors, gpio, ...")
    # a server that drops everything shows when CoAP gives up on a message: about 93 s
    ap.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help="seconds to wait for a report"
    )
    ap.add_argument("--config-only", action="store_true", help="deploy only config.json")
    ap.add_argument("--dry-run", action="store_true", help="check and print the config(s) only")
    ap.add_argument("--no-prompt", action="store_true", help="batch: do not wait for Enter")
    ap.add_argument("--resume", action="store_true", help="no soft reset (the unix port)")
    ap.add_argument("--build", type=Path, default=deploy.BUILD, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    try:
        template = _template(a.template)
        if a.csv:
            rows = read_csv(a.csv)
            if a.row:
                rows = [r for r in rows if r[1]["name"] == a.row]
                if not rows:
                    raise InputError('%s: no row named "%s"' % (a.csv, a.row))
            elif not a.batch:
                raise InputError("with --csv, give --row NAME or --batch")
        else:
            rows = [(0, _fields(a))]
    except InputError as e:
        print("provision: %s" % e)
        return 2

    # every row is checked before any board is touched
    jobs, results = [], []
    for line, row in rows:
        name = row.get("name") or "device"
        where = "%s line %d: " % (a.csv, line) if line else ""
        try:
            cfg = check(device_config(row, template))
            jobs.append((name, row.get("port") or a.port, cfg))
        except InputError as e:
            problems = str(e).splitlines()
            print("provision: %s%s: %s" % (where, name, "\n  ".join([""] + problems).lstrip()))
            results.append(
                (name, row.get("port") or a.port, False, "config: " + "; ".join(problems))
            )
    if not a.batch and results:
        return 2

    prompt = a.batch and not a.no_prompt and sys.stdin.isatty()
    for name, port, cfg in jobs:
        if a.dry_run:
            print("provision: %s: config for %s" % (name, port or "(no port)"))
            print(json.dumps(fwconfig.mask(cfg), indent=2, ensure_ascii=False))
            continue
        if not port:
            results.append((name, port, False, "no serial port: give --port or a port column"))
            continue
        if prompt:
            answer = input(
                "provision: connect %s on %s, then Enter (s: skip, q: quit) " % (name, port)
            )
            if answer.strip().lower() == "q":
                break
            if answer.strip().lower() == "s":
                results.append((name, port, False, "skipped"))
                continue
        print("provision: %s on %s" % (name, port), flush=True)
        ok, detail = provision_one(cfg, port, a.resume, a.timeout, a.config_only, a.build)
        print("provision: %s: %s%s" % (name, "" if ok else "FAILED: ", detail), flush=True)
        results.append((name, port, ok, detail))
    if a.dry_run:
        return 2 if results else 0
    if a.batch:
        print(table(results))
    return 0 if results and all(r[2] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
