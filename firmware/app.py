# app.py: the firmware's main task. Loads the config (a bad one is reported key by key, the
# LED blinks and main returns, so the REPL stays usable), brings up the network, provisions
# the device if it has no token yet, then runs the ThingsBoard device: GPIO RPC, live
# settings from shared attributes, telemetry with the offline spool, claiming.
# The config is loaded before the running firmware's modules are imported, so its schema and
# theirs are never in RAM together (firmware/__init__.py).
import asyncio
import gc
import json

from . import log as logs
from . import use

log = logs.Log("app")
INTERVAL_KEY = "telemetry_interval"  # shared attribute: seconds between messages


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


def run(board=None):
    if board is None:
        from . import board as boards

        board = boards.get()
    return asyncio.run(main(board))


async def main(board):
    # collect early and often: garbage freed while it is still small and recent keeps the free
    # heap in large blocks, which each received datagram needs (recv takes 1152 B)
    gc.threshold(gc.mem_free() // 32)
    cfg, problems = with_config(lambda config: config.load(config_path(board)))
    if problems:
        for problem in problems:
            log.error("config:", problem)
        log.error("fix config.json; the firmware is stopped, the REPL is free")
        board.signal_error(*_led_of(board))
        return False
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
    wifi = cfg["wifi"]
    if wifi["ssid"]:
        await board.connect(wifi["ssid"], wifi["password"])
    await board.sync_time()
    server = cfg["server"]
    ctx = None
    if server["coaps"]:  # DTLS: its files are checked like the config, never a plain fallback
        from .coaps import credentials

        ctx, problems = credentials(board, server)
        for problem in problems:
            log.error("config:", problem)
        if problems:
            board.signal_error(*_led_of(board))
            return False
    payload = _payload(board, server)
    client = await _connect(server, ctx)
    if not cfg.get("token") and not server["client_cert"]:  # X.509 devices go without
        cfg = await provision(board, client, cfg, payload)
    app = App(board, client, cfg, updates, payload)
    await app.run()


async def _connect(server, ctx=None):
    # a host name that does not resolve (yet): say so and try again, never crash
    from coap.client import connect

    delay = 2000
    coap_log = logs.Log("coap").warning  # what the client drops, and why (bad datagrams, no RAM)
    while True:
        try:
            if ctx is not None:  # coaps
                from coap.dtls import connect as dtls_connect

                dtls_log = logs.Log("dtls").info
                host, port = server["host"], server["port"]
                return dtls_connect(host, port, ctx, None, dtls_log, log=coap_log)
            return connect(server["host"], server["port"], log=coap_log)
        except OSError as e:
            log.error(
                "server %s: DNS lookup failed (%s), retry in %d s"
                % (server["host"], e, delay // 1000)
            )
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, 60000)


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
    delay = 2000
    while True:
        try:
            args = (client, p["device_name"], p["key"], p["secret"])
            creds = await tb_provision(*args, payload=payload)
            break
        except Exception as e:  # refused or unreachable: say so and try again later
            log.error("provisioning failed:", e)
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, 300000)
    cfg["token"] = creds["credentialsValue"]
    _, problems = with_config(lambda config: config.save(config_path(board), cfg))
    if problems:
        raise ValueError("provisioned config not saved: %s" % problems)
    log.info("provisioned; token stored in config.json")
    return cfg


class App:
    def __init__(self, board, client, cfg, updates, payload=None):
        from thingsboard.device import Device

        from . import sensors as sensors_mod
        from .gpio import Gpio
        from .spool import Spool
        from .telemetry import Telemetry

        self.board = board
        self.cfg = cfg
        refresh = cfg["server"]["observe_refresh_s"] * 1000
        tb_log = logs.Log("thingsboard").warning
        self.device = Device(client, cfg["token"], refresh, tb_log, payload)
        spool = Spool(board.path("spool"), cfg["telemetry"]["spool_bytes"])
        sensors = sensors_mod.build(board, cfg["sensors"])
        self.gpio = Gpio(board, cfg["gpio"], self._pins_changed)
        self.telemetry = Telemetry(
            self.device,
            board,
            sensors,
            spool,
            cfg["telemetry"]["interval_s"],
            logs.Log("telemetry"),
            updates[0].acked,
        )
        self.updates = updates
        for u in updates:
            u.device = self.device
        self._pins_sending = False  # one pin-state upload at a time, always the latest
        self._pins_dirty = False

    async def run(self):
        d = self.device
        d.subscribe_to_attribute(INTERVAL_KEY, self._interval_changed)
        d.set_server_side_rpc_request_handler(self.rpc)
        d.start()
        jobs = [self._boot_attributes(), self._claim(), self._watch_network()]
        for job in jobs + [u.start() for u in self.updates]:
            asyncio.create_task(job)
        await self.telemetry.run()

    # --- RPC

    def rpc(self, method, params):
        if isinstance(params, str) and params[:1] in ("{", "["):
            try:
                params = json.loads(params)
            except ValueError:
                raise ValueError("params are not valid JSON") from None
        g = self.gpio
        if method == "setGpio":
            return g.set_gpio(params)
        if method == "getGpio":
            return g.get_gpio(params)
        if method == "getGpioStatus":
            return g.get_status()
        if method == "setGpioStatus":
            return g.set_status(params)
        if method == "readNow":
            self.telemetry.read_now()
            return {"result": "reading"}
        if method == "reboot":
            asyncio.create_task(self._reboot())
            return {"result": "rebooting"}
        raise ValueError("unknown method %s" % method)

    async def _reboot(self):
        await asyncio.sleep_ms(1000)  # let the reply go out first
        self.board.reset()

    def _pins_changed(self):
        self._pins_dirty = True
        if not self._pins_sending:
            self._pins_sending = True
            asyncio.create_task(self._send_pins())

    async def _send_pins(self):
        # changes that come while one upload runs are sent together after it
        while self._pins_dirty:
            self._pins_dirty = False
            await self._send_attributes(self.gpio.states())
        self._pins_sending = False

    def _interval_changed(self, key, value):
        if value is None:
            value = self.cfg["telemetry"]["interval_s"]  # deleted: back to the config's
        try:
            self.telemetry.set_interval(value)
            log.info("telemetry interval now %s s" % value)
        except ValueError as e:
            log.error("shared attribute %s:" % key, e)

    # --- background jobs

    async def _send_attributes(self, values):
        delay = 2000
        while True:
            try:
                await self.device.send_attributes(values)
                return
            except Exception as e:
                log.warning("attributes not sent:", e)
                await asyncio.sleep_ms(delay)
                delay = min(delay * 2, 60000)

    async def _boot_attributes(self):
        b = self.board
        title, version = self.updates[0].current
        values = {"fw_title": title, "fw_version": version, "board": b.name}
        values.update(mac=b.mac(), ip=b.ip(), free_heap=b.free_heap())
        values["reset_cause"] = b.reset_cause()
        values.update(self.gpio.states())
        await self._send_attributes(values)
        s = self.cfg["server"]
        log.info("reporting to %s:%d" % (s["host"], s["port"]))  # tools/provision waits for it

    async def _claim(self):
        c = self.cfg.get("claim")
        if not c:
            return
        marker = self.board.path("claimed")
        if c["on_first_boot"] and not _exists(marker):
            if await self._claim_once(c):
                open(marker, "w").close()
        if c.get("button_pin") is None:
            return
        button = self.board.button(c["button_pin"])
        while True:  # a press (held for at least 50 ms) claims again
            await asyncio.sleep_ms(50)
            if button.value():
                await self._claim_once(c)
                while button.value():
                    await asyncio.sleep_ms(50)

    async def _claim_once(self, c):
        try:
            await self.device.claim(c["secret_key"], c["duration_ms"])
            log.info("claim request sent")
            return True
        except Exception as e:
            log.error("claim failed:", e)
            return False

    async def _watch_network(self):
        b = self.board
        wifi = self.cfg["wifi"]
        while True:
            await asyncio.sleep_ms(5000)
            if not b.isconnected():
                log.warning("network down, reconnecting")
                await b.connect(wifi["ssid"], wifi["password"])
                self.device.reconnected()  # the spool empties on the next telemetry cycle


def _led_of(board):
    # the LED settings of a config that failed to load, if that part of it is readable
    try:
        with open(config_path(board)) as f:
            led = json.load(f)["led"]
        return (int(led["pin"]), led.get("invert") is True)
    except Exception:
        return ()


def _exists(path):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False
