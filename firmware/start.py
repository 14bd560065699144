# start.py: the firmware's boot, up to a device ready to run: loads the config (a bad one is
# reported key by key, the LED blinks and the firmware stops, so the REPL stays usable), brings
# up the network and the clock, checks the coaps files, connects, and provisions the device if
# it has no token yet. Needed once per boot: app.main lets it go once the device runs.
# The config is checked before the running firmware's modules are imported, so its schema and
# theirs are never in RAM together (firmware/__init__.py), and kept as checked (checked.py): a
# boot that had to check it restarts MicroPython (a soft reset, which goes on with a trial),
# which then runs without the checker's names.
import asyncio
import json

from thingsboard.backoff import Backoff

from . import log as logs
from . import use

log = logs.Log("app")


def config_path(board):
    return board.path("config.json")


def with_config(job):
    # the config module (its schema) is needed at boot only -> (job(config), problems)
    def checked(config):
        try:
            return job(config), None
        except config.ConfigError as e:
            return None, e.problems

    return use("firmware.config", checked)


def settings(board):
    # -> (cfg, whether this boot checked it), or (None, False) when config.json has problems
    cfg, cause = use("firmware.checked", lambda c: c.kept(board))
    if cause and board.reset_cause() == "soft_reset":  # boot() restarted: what started that
        board.carried = cause
    if cfg is not None:
        return cfg, False
    cfg, problems = with_config(lambda config: config.load(config_path(board), chip=board.chip))
    if problems:
        for problem in problems:
            log.error("config:", problem)
        log.error("fix config.json; the firmware is stopped, the REPL is free")
        board.signal_error(*_led_of(board))
        return None, False
    return cfg, True


def _keep(board, cfg, why, restart=True):
    # cfg as the checker left it is kept (checked.py); then, unless told not to, MicroPython
    # restarts to run without the checker's names, and carries this boot's reset cause over
    cause = board.reset_cause() if restart else None
    if use("firmware.checked", lambda c: c.keep(board, cfg, cause)) and restart:
        log.info(why + ": restarting to run without the checker")
        board.restart()


async def boot(board):
    # -> (client, cfg, updates, payload) for app.App, or None when the firmware cannot run
    cfg, checked = settings(board)
    if cfg is None:
        return None
    if checked:  # restart, unless this boot is the restart and what it kept is stale again
        _keep(board, cfg, "config.json checked", board.carried is None)
    logs.set_level(cfg["log_level"])
    from .updates import Updates

    acked = asyncio.Event()  # the server took a telemetry post: what a new image's trial needs
    fw = cfg["firmware"]
    updates = [
        Updates("fw", board, cfg, fw_id(fw, ""), acked),
        Updates("sw", board, cfg, fw_id(fw, "app_"), acked),
    ]
    for u in updates:
        u.begin()
    log.info("firmware %s %s on %s" % (tuple(updates[0].current) + (board.name,)))
    kept = {}
    if cfg["power"]["mode"] == "sleep":  # the port, IDs and access point of the last wake
        from .sleep import kept as sleep_kept

        kept = sleep_kept(board)
    wifi = cfg["wifi"]
    if wifi["ssid"]:
        ap = kept.setdefault("ap", {}) if kept else None  # sleep.py keeps it
        await board.connect(wifi["ssid"], wifi["password"], wifi["ifconfig"], ap)
    await board.sync_time()
    server = cfg["server"]
    ctx = None
    if server["coaps"]:  # DTLS: its files are checked like the config, never a plain fallback
        ctx, problems = use("firmware.coaps", lambda m: m.credentials(board, server))
        for problem in problems:
            log.error("config:", problem)
        if problems:
            board.signal_error(*_led_of(board))
            return None
    if not board.time_set():
        if server["coaps"] and server["ca"]:  # mbedTLS checks the certificates' dates
            log.warning("clock not set: certificate checks wait for NTP")
            await board.keep_time()
        else:  # telemetry goes out unstamped until NTP answers
            asyncio.create_task(board.keep_time())
    payload = _payload(board, server)
    try:
        client = await _connect(server, ctx, kept)
    except ValueError as e:  # a server this board cannot reach at all
        log.error("config: server.host:", e)
        board.signal_error(*_led_of(board))
        return None
    if not cfg.get("token") and not server["client_cert"]:  # X.509 devices go without
        cfg = await provision(board, client, cfg, payload)
    return client, cfg, updates, payload


async def _connect(server, ctx, kept):
    # a host name that does not resolve (yet): say so and try again, never crash. kept: a
    # sleeping board's {"port", "mid"} (sleep.py), for plain CoAP; {} otherwise
    from coap.client import connect

    local = kept.get("port")
    backoff = Backoff(2000, 60000)
    coap_log = logs.Log("coap").warning  # what the client drops, and why (bad datagrams, no RAM)
    host, port = server["host"], server["port"]
    while True:
        try:
            if ctx is not None:  # coaps
                from coap.dtls import connect as dtls_connect

                dtls_log = logs.Log("dtls").info
                return dtls_connect(host, port, ctx, None, dtls_log, log=coap_log)
            return connect(host, port, local, log=coap_log, mid=kept.get("mid"))
        except OSError as e:
            if local:  # the kept port may be taken: any port then
                local = None
                continue
            delay = backoff.next()
            log.error(
                "server %s: DNS lookup failed (%s), retry in %d s" % (host, e, delay // 1000)
            )
            await asyncio.sleep_ms(delay)


def fw_id(fw, prefix):
    # (title, version) the flashed image or the deployed app files are known by
    return (fw[prefix + "title"], fw[prefix + "version"])


def _payload(board, server):
    # the payload format: None for JSON (the Device's default); for a PROTOBUF profile its
    # schema file, checked by config.load, and the protobuf code, loaded only then
    if server["payload"] != "protobuf":
        return None
    from thingsboard.protopayload import load

    return load(board.path(server["schema"]), logs.Log("thingsboard").warning)


async def provision(board, client, cfg, payload=None):
    # first boot with provisioning settings: get a token and keep it in the config
    from thingsboard.provision import provision as tb_provision

    p = cfg["provisioning"]
    backoff = Backoff(2000, 300000)
    while True:
        try:
            args = (client, p["device_name"], p["key"], p["secret"])
            creds = await tb_provision(*args, payload=payload)
            break
        except Exception as e:  # refused or unreachable: say so and try again later
            log.error("provisioning failed:", e)
            await asyncio.sleep_ms(backoff.next())
    cfg["token"] = creds["credentialsValue"]
    _, problems = with_config(lambda config: config.save(config_path(board), cfg, chip=board.chip))
    if problems:
        raise ValueError("provisioned config not saved: %s" % problems)
    _keep(board, cfg, "provisioned; token stored in config.json")  # the checker saved it
    log.info("provisioned; token stored in config.json")  # not kept: this boot runs on
    return cfg


def _led_of(board):
    # the LED settings of a config that failed to load, if that part of it is readable
    try:
        with open(config_path(board)) as f:
            led = json.load(f)["led"]
        return (int(led["pin"]), led.get("invert") is True)
    except Exception:
        return ()
