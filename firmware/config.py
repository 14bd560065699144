# Device settings (config.json, documented in CONFIG.md): one schema drives one validator that
# reports every problem with its key path. Runs unchanged under MicroPython and CPython, so the
# host provisioning tools check configs with the firmware's own rules.
import errno
import json
import os
import sys

# the firmware's and the app's version: package.json (mip) and CHANGELOG.md say the same
VERSION = "0.1.0"


class ConfigError(Exception):
    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


# A type is a dict (object: key -> (type, default)), a one-item list (list of that type), a
# (test, expected) tuple whose test returns True, False or a specific complaint, or a function
# (value, path, problems) -> value. REQ marks a required key; keys whose default is None also
# accept null.
REQ = object()
STR = (lambda v: type(v) is str, "a string")
TEXT = (lambda v: type(v) is str and v != "", "a non-empty string")
BOOL = (lambda v: type(v) is bool, "true or false")
NUM = (lambda v: type(v) in (int, float), "a number")
POSITIVE = (lambda v: type(v) in (int, float) and v > 0, "a number > 0")


def _int(lo, hi=None):
    if hi is None:
        return (lambda v: type(v) is int and v >= lo, "an integer >= %d" % lo)
    return (lambda v: type(v) is int and lo <= v <= hi, "an integer %d-%d" % (lo, hi))


def _one(*vals):
    # type must match too: JSON true is not 1 and false is not 0
    return (
        lambda v: any(v == x and type(v) is type(x) for x in vals),
        "one of " + ", ".join(json.dumps(x) for x in vals),
    )


IFCONFIG = (
    lambda v: type(v) is list and len(v) == 4 and all(type(x) is str and x for x in v),
    '["ip", "netmask", "gateway", "dns"]',
)
KEEP_AWAKE = ("update", "rpc", "stay_awake")  # what may keep a sleeping board awake (sleep.py)
# telemetry.py has the same limits (a day: the ESP32's ticks arithmetic)
INTERVAL = (
    lambda v: type(v) in (int, float) and 0.5 <= v <= 86400,
    "a number of seconds 0.5-86400",
)
PIN = (lambda v: type(v) is int and 0 <= v <= 48, "a GPIO number 0-48")  # chips.py: which
ROM = (
    lambda v: type(v) is str and len(v) == 16 and all(c in "0123456789abcdefABCDEF" for c in v),
    "16 hex digits",
)
SCALE = (
    lambda v: (
        type(v) is list
        and len(v) == 4
        and all(type(x) in (int, float) for x in v)
        and v[0] != v[1]
    ),
    "[in_min, in_max, out_min, out_max] with in_min != in_max",
)
KIND = _one("chip_temp", "adc", "dht11", "dht22", "ds18b20", "sim")
_KIND_ONLY = {"type": (KIND, REQ)}
_DHT = {"type": (KIND, REQ), "pin": (PIN, REQ), "prefix": (STR, "")}
SENSORS = {
    "chip_temp": {"type": (KIND, REQ), "key": (TEXT, REQ), "offset": (NUM, None)},
    "adc": {
        "type": (KIND, REQ),
        "key": (TEXT, REQ),
        "pin": (PIN, REQ),
        "scale": (SCALE, None),
        "atten": (_one(0, 2.5, 6, 11), 11),
    },
    "dht11": _DHT,
    "dht22": _DHT,
    "ds18b20": {"type": (KIND, REQ), "key": (TEXT, REQ), "pin": (PIN, REQ), "rom": (ROM, None)},
    "sim": {
        "type": (KIND, REQ),
        "key": (TEXT, REQ),
        "min": (NUM, REQ),
        "max": (NUM, REQ),
        "step": (POSITIVE, None),
    },
}


def _sensor(v, path, out):
    if type(v) is dict:
        kind = v.get("type")
        fields = SENSORS.get(kind) if type(kind) is str else None
        if fields is None:  # report the type alone: which other keys belong depends on it
            fields, v = _KIND_ONLY, ({"type": kind} if "type" in v else {})
        return _check(v, fields, path, out)
    return _check(v, _KIND_ONLY, path, out)


SCHEMA = {
    "wifi": ({"ssid": (STR, ""), "password": (STR, ""), "ifconfig": (IFCONFIG, None)}, {}),
    "server": (
        {
            "host": (TEXT, REQ),
            "port": (_int(1, 65535), 5683),
            "coaps": (BOOL, False),
            "ca": (TEXT, None),
            "pin": (TEXT, None),
            "client_cert": (TEXT, None),
            "client_key": (TEXT, None),
            "psk_identity": (TEXT, None),
            "psk_key": (TEXT, None),
            "observe_refresh_s": (_int(10, 86400), 300),
            "payload": (_one("json", "protobuf"), "json"),
            "schema": (TEXT, None),
        },
        REQ,
    ),
    "token": (STR, ""),
    "provisioning": ({"device_name": (STR, ""), "key": (TEXT, REQ), "secret": (TEXT, REQ)}, None),
    "claim": (
        {
            "secret_key": (STR, ""),
            "duration_ms": (_int(1), 3600000),
            "on_first_boot": (BOOL, False),
            "button_pin": (PIN, None),
        },
        None,
    ),
    "telemetry": ({"interval_s": (INTERVAL, 60), "spool_bytes": (_int(1024), 16384)}, {}),
    "sensors": ([_sensor], []),
    "gpio": (
        [
            {
                "name": (TEXT, REQ),
                "pin": (PIN, REQ),
                "direction": (_one("in", "out"), REQ),
                "invert": (BOOL, False),
                "initial": (_one(0, 1), None),
            }
        ],
        [],
    ),
    "led": ({"pin": (PIN, REQ), "invert": (BOOL, False)}, None),
    "log_level": (_one("debug", "info", "warning", "error"), "info"),
    "firmware": (
        {
            "title": (TEXT, "coapboard"),
            "version": (TEXT, VERSION),
            "app_title": (TEXT, "coapboard-app"),
            "app_version": (TEXT, VERSION),
        },
        {},
    ),
    "power": (
        {
            "mode": (_one("awake", "sleep"), "awake"),
            "awake_max_s": (_int(1, 3600), 30),
            "listen_ms": (_int(0, 10000), 100),
            "keep_awake": ([_one(*KEEP_AWAKE)], list(KEEP_AWAKE)),
        },
        {},
    ),
    "ota": (
        {
            "chunk_size": (_int(1, 1024), 1024),
            "window": (_int(1, 16), 6),
            "chunk_timeout_s": (_int(1), 10),
            "retries": (_int(0), 5),
            "self_test_s": (_int(5), 120),
        },
        {},
    ),
}
SECRETS = (
    ("wifi", "password"),
    (None, "token"),
    ("provisioning", "key"),
    ("provisioning", "secret"),
    ("claim", "secret_key"),
    ("server", "psk_key"),
)
# what each sensor type needs from its pin: "out" (driven), "adc" (ADC1), "bus" (1-Wire, shared)
_PIN_USE = {"adc": "adc", "dht11": "out", "dht22": "out", "ds18b20": "bus"}


def _show(v, path=None):
    # a value for a problem report; never a secret, nor a string in place of a section that
    # holds one (a password typed as "wifi": "...")
    if path and v is not None and type(v) is not bool:
        for sect, key in SECRETS:
            leaf = path == (sect + "." + key if sect else key)
            if leaf or (path == sect and type(v) is str):
                return "%s (not shown: it may be a secret)" % _kind(v)
    try:
        s = json.dumps(v)
    except TypeError:  # CPython, for values that did not come from JSON
        s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _kind(v):
    kinds = {str: "a string", int: "a number", float: "a number", list: "a list"}
    return kinds.get(type(v), "an object")


def _distance(a, b):
    row = list(range(len(b) + 1))
    for i in range(len(a)):
        prev, row[0] = row[0], i + 1
        for j in range(len(b)):
            cur = min(row[j + 1] + 1, row[j] + 1, prev + (a[i] != b[j]))
            prev, row[j + 1] = row[j + 1], cur
    return row[-1]


def _hint(key, known):
    # the nearest known key, if it is close enough to be a typo
    best = (len(key) // 4 + 2, "")  # (distance, key): ties go to the first by name
    for k in known:
        best = min(best, (_distance(key.lower(), k), k))
    return ' (did you mean "%s"?)' % best[1] if best[1] else ""


def _check(v, t, path, out):
    # -> v with defaults filled in, or None where a problem was reported (later checks skip it)
    if type(t) is dict:
        if type(v) is not dict:
            out.append("%s: expected an object, got %s" % (path or "config", _show(v, path)))
            return None
        r = {}
        for k in v:
            if k == "_comment":
                r[k] = v[k]
            elif k not in t:
                out.append('%s: unknown key "%s"%s' % (path or "config", k, _hint(k, t)))
        for k in t:
            kt, default = t[k]
            p = path + "." + k if path else k
            if k in v and not (v[k] is None and default is None):
                r[k] = _check(v[k], kt, p, out)
            elif default is REQ:
                out.append("%s: missing, expected %s" % (p, _expected(kt)))
                r[k] = None
            else:
                r[k] = None if default is None else _check(default, kt, p, out)
        return r
    if type(t) is list:
        if type(v) is not list:
            out.append("%s: expected a list, got %s" % (path, _show(v)))
            return None
        return [_check(x, t[0], "%s[%d]" % (path, i), out) for i, x in enumerate(v)]
    if type(t) is tuple:
        ok = t[0](v)
        if ok is True:
            return v
        out.append(
            "%s: %s" % (path, ok)
            if ok
            else "%s: expected %s, got %s" % (path, t[1], _show(v, path))
        )
        return None
    return t(v, path, out)


def _expected(t):
    return t[1] if type(t) is tuple else "an object" if type(t) is dict else "a list"


def _rules(c, cfg, out, need_wifi, chip):
    # checks across keys; c is the filled copy of cfg, with None where a problem is reported
    w, s = c["wifi"], c["server"]
    if need_wifi and w and w["ssid"] == "":
        out.append("wifi.ssid: expected the Wi-Fi network name (empty: no Wi-Fi, unix port only)")
    if s:
        if s["coaps"] and "port" not in cfg["server"]:
            s["port"] = 5684
        _dtls(s, cfg["server"], out)
        if s["payload"] == "protobuf" and cfg["server"].get("schema") is None:
            out.append("server.schema: missing, expected the schema file of the protobuf profile")
        elif s["schema"] and s["payload"] == "json":
            out.append('server.schema: only used with protobuf, expected payload: "protobuf"')
    x509 = s and s["coaps"] and s["client_cert"]  # X.509 authentication needs no token
    if c["token"] == "" and cfg.get("provisioning") is None and not x509:
        out.append('token: expected a ThingsBoard access token (or a "provisioning" section)')

    pins = []  # (pin, key path, use): "in", "out", "adc" or "bus"
    names = {}  # gpio name -> key path
    for i, g in enumerate(c["gpio"] or ()):
        if not g:
            continue
        p = "gpio[%d]" % i
        pins.append((g["pin"], p + ".pin", g["direction"]))
        n = g["name"]
        if n is not None and n.isdigit():  # RPCs may name a pin by its number as a string
            out.append('%s.name: expected a name, not a number, got "%s"' % (p, n))
        elif n in names:
            out.append('%s.name: "%s" is already used by %s' % (p, n, names[n]))
        elif n is not None:
            names[n] = p
        if g["direction"] == "out" and g["initial"] is None:
            g["initial"] = 0
        elif g["direction"] == "in" and g["initial"] is not None:
            out.append("%s.initial: only outputs have an initial value" % p)
    if c["led"]:
        pins.append((c["led"]["pin"], "led.pin", "out"))
    if c["claim"]:
        pins.append((c["claim"]["button_pin"], "claim.button_pin", "button"))

    keys = {}  # telemetry key -> the sensor that sends it
    buses = {}  # 1-Wire pin -> indexes of the ds18b20 sensors on it
    sensors = c["sensors"] or ()
    for i, x in enumerate(sensors):
        if not x or not x["type"]:
            continue
        p, kind = "sensors[%d]" % i, x["type"]
        if kind in _PIN_USE:
            pins.append((x["pin"], p + ".pin", _PIN_USE[kind]))
        field, sends = ".key", [x.get("key")]
        if kind[:3] == "dht":
            pre = x["prefix"]
            field, sends = (
                ".prefix",
                [] if pre is None else [pre + "temperature", pre + "humidity"],
            )
        elif kind == "adc" and x["scale"] and x["key"]:
            sends.append(x["key"] + "_raw")
        elif kind == "sim" and x["min"] is not None and x["max"] is not None:
            if x["max"] <= x["min"]:
                out.append(
                    "%s.max: expected a number > min (%s), got %s" % (p, x["min"], _show(x["max"]))
                )
        elif kind == "ds18b20" and x["pin"] is not None:
            buses.setdefault(x["pin"], []).append(i)
        for n in sends:
            if n in keys:
                out.append(
                    '%s%s: telemetry key "%s" is already used by %s' % (p, field, n, keys[n])
                )
            elif n is not None:
                keys[n] = p
    for pin, shared in buses.items():
        for i in shared if len(shared) > 1 else ():
            if cfg["sensors"][i].get("rom") is None:
                out.append(
                    "sensors[%d].rom: missing, expected 16 hex digits (several ds18b20 on pin %d)"
                    % (i, pin)
                )

    from .chips import problem

    used = {}
    for pin, p, use in pins:
        if pin is None:
            continue
        why = problem(chip or "esp32", pin, use)  # the classic ESP32's rules by default
        if why:
            out.append("%s: %s" % (p, why))
        first = used.get(pin)
        if first is None:
            used[pin] = (p, use)
        elif use != "bus" or first[1] != "bus":
            out.append("%s: %d is already used by %s" % (p, pin, first[0]))


def _dtls(s, raw, out):
    # the DTLS keys: only with coaps, in pairs, and always a way to verify the server
    keys = ("ca", "pin", "client_cert", "client_key", "psk_identity", "psk_key")
    has = [k for k in keys if raw.get(k) is not None]
    if s["coaps"] is not True:
        for k in has if s["coaps"] is False else ():
            out.append("server.%s: only used with coaps, expected coaps: true" % k)
        return
    pairs = ("client_cert", "client_key"), ("psk_identity", "psk_key")
    for a, b in pairs + tuple((b, a) for a, b in pairs):
        if a in has and b not in has:
            out.append("server.%s: missing, expected it with server.%s" % (b, a))
    if "psk_identity" in has or "psk_key" in has:
        for k in ("ca", "pin", "client_cert", "client_key"):
            if k in has:
                out.append("server.%s: not used with a PSK (server.psk_identity)" % k)
    elif "ca" in has and "pin" in has:
        out.append("server.pin: expected server.ca or server.pin, not both")
    elif "ca" not in has and "pin" not in has:
        out.append(
            "server.ca: missing, expected the CA certificate file of the server"
            " (or server.pin, or a PSK): coaps never trusts an unverified server"
        )


def _validate(cfg, need_wifi, chip=None):
    if need_wifi is None:
        need_wifi = sys.platform == "esp32"
    out = []
    c = _check(cfg, SCHEMA, "", out)
    if c is not None:
        _rules(c, cfg, out, need_wifi, chip)
    out.sort()  # the same order on MicroPython, whose dicts are unordered
    return c, out


def validate(cfg, need_wifi=None, chip=None):
    """Every problem in cfg, one string each: the key path and what it expects. An empty
    wifi.ssid (no Wi-Fi) is a problem if need_wifi, which by default is true only on an ESP32.
    Pins are checked for chip ("esp32s3", ... as board.chip says; default the classic ESP32)."""
    return _validate(cfg, need_wifi, chip)[1]


def defaults(t=SCHEMA):
    """What load() fills in for absent keys (required keys are left out)."""
    r = {}
    for k in t:
        kt, d = t[k]
        if type(kt) is dict and d is not None:
            r[k] = defaults(kt)
        elif d is not REQ:
            r[k] = list(d) if type(d) is list else d
    return r


def load(path, need_wifi=None, chip=None):
    """The settings in path, checked (pins for chip) and with defaults filled in; raises
    ConfigError."""
    name = path
    try:
        data = _read(name)
    except OSError as e:
        if e.args[0] != errno.ENOENT:
            raise ConfigError(["%s: cannot read it (%s)" % (path, e)]) from None
        # only the new file: a save on VfsFat (remove, then rename) was cut between the two
        name = path + ".tmp"
        try:
            data = _read(name)
        except OSError:
            raise ConfigError(["%s: file not found" % path]) from None
    try:
        cfg = json.loads(data)
    except ValueError as e:
        raise ConfigError(["%s: invalid JSON (%s)" % (name, e)]) from None
    c, problems = _validate(cfg, need_wifi, chip)
    if not problems and c["server"]["payload"] == "protobuf":
        problems = _check_schema(schema_path(path, c["server"]["schema"]))
    if problems:
        raise ConfigError(problems)
    if name != path:
        os.rename(name, path)
    return c


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def schema_path(config_path, schema):
    # server.schema is a path on the board; a relative one is next to config.json
    if schema.startswith("/"):
        return schema
    folder = config_path.rpartition("/")[0]
    return folder + "/" + schema if folder else schema


def _check_schema(path):
    # the protobuf profile's schema file (tools/protoschema makes it) must be there and whole
    try:
        desc = json.loads(_read(path))
    except OSError as e:
        return ["server.schema: cannot read %s (%s)" % (path, e)]
    except ValueError:
        return ["server.schema: %s is not JSON (make it with tools/protoschema)" % path]
    messages = desc.get("messages") if type(desc) is dict else None
    for role in ("telemetry", "attributes", "rpc_request", "rpc_response"):
        if type(messages) is not dict or desc.get(role) not in messages:
            return [
                "server.schema: %s has no %s message (make it with tools/protoschema)"
                % (path, role)
            ]
    return []


def _dumps(cfg):
    # one top-level key per line and one list item per line (MicroPython has no indent=)
    lines = []
    for k in cfg:
        v = cfg[k]
        if type(v) is list and v:
            v = "[\n    " + ",\n    ".join(json.dumps(x) for x in v) + "\n  ]"
        else:
            v = json.dumps(v)
        lines.append("  %s: %s" % (json.dumps(k), v))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def save(path, cfg, need_wifi=None, chip=None):
    """Check cfg, then write it atomically: a power cut leaves the old file or the new one."""
    problems = validate(cfg, need_wifi, chip)
    if problems:
        raise ConfigError(problems)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(_dumps(cfg))
        f.flush()
        if hasattr(os, "fsync"):  # CPython; MicroPython commits the file when it is closed
            os.fsync(f.fileno())
    # rename replaces the old file in one step on VfsLfs2 and VfsPosix; VfsFat removes it first
    # (load() finishes that). os.replace: CPython on Windows, where rename will not replace.
    getattr(os, "replace", os.rename)(tmp, path)


def mask(cfg):
    """A copy of cfg for logs, secrets cut to their first 4 characters ("A1B2…"; nothing of
    secrets shorter than 8)."""
    c = dict(cfg)
    for sect, key in SECRETS:
        d = c.get(sect) if sect else c
        if type(d) is dict and type(d.get(key)) is str and d[key]:
            if sect:
                d = c[sect] = dict(d)
            d[key] = d[key][:4] + "…" if len(d[key]) >= 8 else "…"
    return c
