# app.py: the firmware's main task: boots (firmware/start.py), then runs the ThingsBoard device:
# GPIO RPC, live settings from shared attributes, telemetry with the offline spool, claiming,
# updates.
import asyncio
import gc
import json
from asyncio import core

from micropython import const

from thingsboard.backoff import Backoff

from . import drop
from . import log as logs

log = logs.Log("app")
_INTERVAL_KEY = const("telemetry_interval")  # shared attribute: seconds between messages


def run(board=None):
    if board is None:
        from . import board as boards

        board = boards.get()
    return asyncio.run(main(board))


async def main(board):
    woke = core.ticks()  # a sleeping board's wake begins
    # collect early and often: garbage freed while it is still small and recent keeps the free
    # heap in large blocks, which each received datagram needs (recv takes 1152 B)
    gc.threshold(gc.mem_free() // 32)
    from . import start

    ready = await start.boot(board)
    start = None
    drop("firmware.start")  # needed once per boot
    if ready is None:
        return False
    await App(board, *ready).run(woke)


class App:
    def __init__(self, board, client, cfg, updates, payload=None):
        from thingsboard.device import Device

        from . import sensors
        from .gpio import Gpio
        from .telemetry import Telemetry

        self.board = board
        self.cfg = cfg
        refresh = cfg["server"]["observe_refresh_s"] * 1000
        tb_log = logs.Log("thingsboard").warning
        self.device = Device(client, cfg["token"], refresh, tb_log, payload)
        sensors = sensors.build(board, cfg["sensors"])
        self.gpio = Gpio(board, cfg["gpio"], self._pins_changed)
        self.telemetry = Telemetry(
            self.device,
            board,
            sensors,
            (board.path("spool"), cfg["telemetry"]["spool_bytes"]),
            cfg["telemetry"]["interval_s"],
            logs.Log("telemetry"),
            updates[0].acked,
        )
        self.updates = updates
        for u in updates:
            u.device = self.device
        self._pins_sending = False  # one pin-state upload at a time, always the latest
        self._pins_dirty = False
        self._interval_said = None  # (type, value) of the last telemetry_interval
        self.wake = None  # a sleeping board's wake (power mode "sleep")

    async def run(self, woke):
        d = self.device
        d.subscribe_to_attribute(_INTERVAL_KEY, self._interval_changed)
        d.set_server_side_rpc_request_handler(self.rpc)
        b = self.board
        jobs = [self._claim()]
        woken = False
        if self.cfg["power"]["mode"] == "sleep":
            from . import sleep

            kept = sleep.kept(b)
            self._said(kept.get("said"))
            self.wake = sleep.Wake(self, kept, woke)
            woken = b.reset_cause() == "deepsleep"
            self.telemetry.extra["wake_reason"] = b.reset_cause()
        else:
            jobs.append(self._watch_network())
        if not woken:  # a wake reports no more than its reading
            jobs.append(self._boot_attributes())
        for job in jobs + [u.start(quiet=woken) for u in self.updates]:
            asyncio.create_task(job)
        if self.wake:
            await self.wake.run()
        d.start()
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
        if self.wake:
            r = self.wake.rpc(method, params)
            if r is not None:
                return r
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

    def interval_said(self):
        # the server's telemetry_interval as last said (None: not said): a sleeping board keeps
        # it, so the same value said at the next wake changes nothing
        return None if self._interval_said is None else self._interval_said[1]

    def _said(self, value):
        if value is not None:
            self._interval_said = (type(value), value)
            try:
                self.telemetry.set_interval(value)
            except ValueError:
                pass

    def _interval_changed(self, key, value):
        # every new subscription says every shared attribute again: a value said before
        # changes nothing and says nothing
        said, self._interval_said = self._interval_said, (type(value), value)
        if said == self._interval_said:
            return
        if value is None:
            value = self.cfg["telemetry"]["interval_s"]  # deleted: back to the config's
        try:
            if self.telemetry.set_interval(value):
                log.info("telemetry interval now %s s" % value)
        except ValueError as e:
            log.error("shared attribute %s:" % key, e)

    # --- background jobs

    async def _send_attributes(self, values):
        backoff = Backoff(2000, 60000)
        while True:
            try:
                await self.device.send_attributes(values)
                return
            except Exception as e:
                log.warning("attributes not sent:", e)
                await asyncio.sleep_ms(backoff.next())

    async def _boot_attributes(self):
        b = self.board
        title, version = self.updates[0].current
        values = {"fw_title": title, "fw_version": version, "board": b.name}
        values.update(mac=b.mac(), ip=b.ip(), free_heap=b.free_heap())
        values["reset_cause"] = b.reset_cause()
        values.update(self.gpio.states())
        crashed = b.path("last_error")  # what ended the last run (firmware/crash.py)
        try:
            with open(crashed) as f:
                values["last_error"] = f.read()
        except OSError:
            crashed = None
        await self._send_attributes(values)
        if crashed:
            import os

            os.remove(crashed)
        s = self.cfg["server"]
        log.info("reporting to %s:%d" % (s["host"], s["port"]))  # tools/provision waits for it

    async def _claim(self):
        c = self.cfg.get("claim")
        if not c:
            return
        marker = self.board.path("claimed")
        if c["on_first_boot"] and not exists(marker):
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
                await b.connect(wifi["ssid"], wifi["password"], wifi["ifconfig"])
                self.device.reconnected()
                self.telemetry.kick()


def exists(path):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False
