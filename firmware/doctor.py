# doctor: what a technician needs to know about a board that does not report, from its REPL
# (Ctrl-C stops the firmware first):
#   >>> import firmware.doctor          the report; firmware.doctor.run() repeats it
# config (secrets masked), what this MicroPython and chip cannot do, the clock, Wi-Fi, the
# server (DNS, a CoAP ping, the token), the OTA partitions and rollback state, free heap and
# flash. A module of its own, imported only on demand, so it
# costs nothing at boot. Also runs on the unix port in a simulated device's folder:
#   micropython -c "import firmware.doctor"
import asyncio
import gc
import os
import socket
import sys
from errno import EAGAIN, ECONNREFUSED, ETIMEDOUT
from time import ticks_diff, ticks_ms

from micropython import const

from coap.codec import CON, EMPTY, RST, MessageError, View, code_str, encode

from . import board as boards

TRIES = 3  # CoAP pings (one every PING_MS) before the server counts as silent
PING_MS = 2000
_MID = const(0x5A00)  # message IDs of the pings


def run(board=None, out=print):
    """Print the report; -> the number of problems found."""
    b = board or boards.get()
    out("coapboard doctor: %s, MicroPython %s" % (b.name, _version()))
    problems = 0
    cfg = _config(b, out)
    problems += _port(b, cfg, out)
    if cfg is None:
        problems += 1
    elif not _wifi(b, cfg["wifi"], out):
        problems += 1
        out("server   not checked: no network")
    else:
        problems += _server(cfg, out)
    problems += _ota(b, out)
    _memory(b, out)
    out("doctor: %s" % ("no problems found" if not problems else "%d problem(s)" % problems))
    return problems


def _version():
    v = sys.implementation.version
    return "%d.%d.%d" % v[:3]


def _config(b, out):
    from . import config

    try:
        cfg = config.load(b.path("config.json"), chip=b.chip)
    except config.ConfigError as e:
        for p in e.problems:
            out("config   PROBLEM: %s" % p)
        return None
    m = config.mask(cfg)
    s = m["server"]
    if m["token"]:
        who = "token %s" % m["token"]
    else:
        who = 'provisions itself as "%s" (key %s)' % (
            m["provisioning"]["device_name"],
            m["provisioning"]["key"],
        )
    out(
        "config   ok: server %s:%d%s, %s"
        % (s["host"], s["port"], " (coaps)" if s["coaps"] else "", who)
    )
    w = m["wifi"]
    out(
        '         wifi "%s" (password %s), %d sensors, %d gpio, interval %d s, log %s'
        % (
            w["ssid"],
            w["password"] or "none",
            len(m["sensors"]),
            len(m["gpio"]),
            m["telemetry"]["interval_s"],
            m["log_level"],
        )
    )
    return cfg


def _port(b, cfg, out):
    # what this MicroPython and this chip cannot do, and what of it the config needs
    import ssl

    dtls = hasattr(ssl, "PROTOCOL_DTLS_CLIENT")  # DTLS came with MicroPython 1.25
    psk = False
    if dtls:
        c = ssl.SSLContext(ssl.PROTOCOL_DTLS_CLIENT)
        psk = hasattr(getattr(c, "_context", c), "psk_key")  # not in official builds
    s = cfg["server"] if cfg else None
    problem = None
    if s and s["coaps"] and not dtls:
        problem = "has no DTLS, which coaps needs: 1.25 or later has it"
    elif s and s["coaps"] and s["psk_identity"] and not psk:
        problem = "has no DTLS PSK, which server.psk_key needs: use server.ca or server.pin"
    if problem:
        out("port     PROBLEM: MicroPython %s %s" % (_version(), problem))
    else:
        out("port     MicroPython %s, chip: %s; DTLS %s, PSK %s" % (
            _version(), b.chip or "none (simulation)",
            "yes" if dtls else "no (1.25 or later has it)", "yes" if psk else "no"))  # fmt: skip
    if b.chip == "esp32" and cfg:
        for x in cfg["sensors"]:
            if x["type"] == "chip_temp" and x.get("offset") is None:
                out("         %s is raw on an ESP32 (%s_raw): chip_temp.offset makes it °C"
                    % (x["key"], x["key"]))  # fmt: skip
    if b.time_set():
        out("clock    set")
    else:
        waits = s and s["coaps"] and s["ca"]
        then = "certificate checks wait for it" if waits else "telemetry goes unstamped"
        out("clock    not set: NTP has not answered; %s" % then)
    return 1 if problem else 0


def _wifi(b, wifi, out):
    if not wifi["ssid"]:
        out("wifi     none configured (unix port): the host's network, ip %s" % b.ip())
        return True
    if not b.isconnected():
        out('wifi     not joined; one attempt to join "%s" ...' % wifi["ssid"])
        if not asyncio.run(b._join(wifi["ssid"], wifi["password"])):
            out(
                'wifi     PROBLEM: not joined to "%s": check the name and password, that it is '
                "2.4 GHz, and the signal here" % wifi["ssid"]
            )
            return False
    out('wifi     joined "%s": ip %s, mac %s' % (wifi["ssid"], b.ip(), b.mac()))
    return True


def _server(cfg, out):
    s = cfg["server"]
    host, port = s["host"], s["port"]
    from coap.client import address

    try:
        ai = address(host, port)
    except OSError as e:
        out("server   PROBLEM: DNS lookup of %s failed (%s)" % (host, e))
        return 1
    except ValueError as e:
        out("server   PROBLEM: %s" % e)
        return 1
    where = "%s:%d (%s)" % (host, port, _ip(ai))
    got = _ping(ai)
    if got == "refused":
        out("server   PROBLEM: %s refused: nothing listens on udp/%d there" % (where, port))
        return 1
    if got is None:
        out(
            "server   PROBLEM: no answer from %s to %d CoAP pings: check the address, the port "
            "and firewalls" % (where, TRIES)
        )
        return 1
    out("server   %s answers a CoAP ping in %d ms" % (where, got))
    if s["coaps"]:
        out("token    not checked: coaps")
        return 0
    if not cfg["token"]:
        out("token    none yet: the board provisions itself at its next start")
        return 0
    code = asyncio.run(_token(host, port, cfg["token"]))
    if code in (69, 132):  # 2.05, or 4.04: no such attributes yet; both mean a known token
        out("token    accepted by the server")
        return 0
    if code == 129:
        out("token    PROBLEM: the server does not know this access token (4.01)")
    elif code == 160:
        out(
            "token    PROBLEM: the server refuses requests for now (5.00: its rate limits, or an"
            " error of its own); the device backs off and tries again"
        )
    else:
        out("token    PROBLEM: %s" % (code if isinstance(code, str) else code_str(code)))
    return 1


def _ping(ai):
    # an empty CON, which a CoAP server answers with RST (RFC 7252 §4.3) -> ms, None (no
    # answer) or "refused" (ICMP port unreachable, where the network stack reports it)
    sock = socket.socket(ai[0], socket.SOCK_DGRAM)
    try:
        sock.connect(ai[-1])
        sock.settimeout(PING_MS / 1000)
        msg = bytearray(4)
        view = View()
        t0 = ticks_ms()
        for mid in range(_MID, _MID + TRIES):
            encode(msg, CON, EMPTY, mid)
            try:
                sock.send(msg)
                while True:  # until the timeout: other datagrams are not the answer
                    data = sock.recv(64)
                    try:
                        view.parse(data, len(data))
                    except MessageError:
                        continue
                    if view.type == RST and _MID <= view.mid <= mid:
                        return ticks_diff(ticks_ms(), t0)
            except OSError as e:
                if e.args[0] == ECONNREFUSED:
                    return "refused"
                if e.args[0] not in (EAGAIN, ETIMEDOUT):  # unix port / ESP32: timed out
                    raise
        return None
    finally:
        sock.close()


async def _token(host, port, token):
    # GET the client attributes: 4.01 for a token the server does not know
    from coap.client import CoapTimeout, connect
    from coap.codec import GET, URI_PATH, URI_QUERY

    client = connect(host, port)
    client.start()
    path = [(URI_PATH, b"api"), (URI_PATH, b"v1"), (URI_PATH, token.encode())]
    path.append((URI_PATH, b"attributes"))
    try:
        ex = await client.exchange().request(GET, path + [(URI_QUERY, "clientKeys=fw_title")],
                                             timeout=PING_MS * TRIES)  # fmt: skip
        return ex.code
    except CoapTimeout as e:
        return "no answer to the token check (%s)" % e
    finally:
        client.close()


def _ota(b, out):
    try:
        from ota import rollback

        s = rollback.state(b.partition)
    except Exception as e:  # no esp32 module, a build without OTA partitions, ...
        out("ota      no OTA partitions (%s)" % (e,))
        return 0
    nxt = "" if s["boot"] == s["running"] else ", next boot: %s" % s["boot"]
    seq = "" if s["seq"] is None else " (seq %d)" % s["seq"]
    out("ota      running %s%s, state %s%s" % (s["running"], nxt, s["state"], seq))
    if s["state"] == "pending_verify" and s["boot"] == s["running"]:
        out("         the running image is on trial: it rolls back at the next reset unless it "
            "reports")  # fmt: skip
    _updates(b.path(""), out)
    return 0


def _updates(root, out):
    # what firmware/updates.py keeps: the update on trial or failed, a download to resume, and
    # the app slot of a software update (lib/ota/appslot.py)
    import json

    def load(name):
        try:
            with open(root + name) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    for kind, st in sorted(load("ota.json").items()):
        for key, what in (("trying", "on trial"), ("failed", "failed, not fetched again")):
            pkg = st.get(key)
            if pkg:
                pkg = pkg["pkg"] if key == "trying" else pkg
                out("         %s %s %s %s" % (kind, pkg[0], pkg[1], what))
    p = load("ota_progress.json")
    if p:
        out("         %s download of %s %s: %d of %d bytes in flash, resumes at the next try"
            % (p["kind"], p["pkg"][0], p["pkg"][1], p["flashed"], p["pkg"][2]))  # fmt: skip
    slot = load("apps/slot.json")
    if slot.get("run") or slot.get("aborted"):
        out("         app slot %s (%s)%s" % (
            slot["run"] or "factory", slot["state"],
            ", %s abandoned: %s" % (slot["aborted"], slot.get("reason")) if slot.get("aborted")
            else ""))  # fmt: skip


def _memory(b, out):
    gc.collect()
    free, used = gc.mem_free(), gc.mem_alloc()
    line = "memory   free heap %s of %s" % (_size(free), _size(free + used))
    try:
        st = os.statvfs(b.root)  # (bsize, frsize, blocks, bfree, ...)
        line += "; flash %s free of %s" % (_size(st[1] * st[3]), _size(st[1] * st[2]))
    except OSError:
        pass
    out(line)


def _size(n):
    return "%d KB" % (n // 1024) if n < 10 << 20 else "%d MB" % (n >> 20)


def _ip(ai):
    # the address getaddrinfo found: a tuple on an ESP32, a raw sockaddr on the unix port
    addr = ai[-1]
    if isinstance(addr, tuple):
        return addr[0]
    return socket.inet_ntop(ai[0], socket.sockaddr(addr)[1])


run()
