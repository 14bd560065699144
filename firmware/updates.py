# updates.py: ThingsBoard OTA (transport reference §6), the part that runs on every boot: what
# runs, its trial, following the fw_*/sw_* assignment, the state reports. An update itself is
# fetch.py (with download.py and lib/ota's writer), the slots are slots.py: both are imported
# only while they are needed.
#
# One Updates per kind: "fw" (the MicroPython image, app partitions ota_0/ota_1) and "sw" (the
# app bundle, bundle.py). Both have two slots, one running, and the same life cycle:
#   assigned package differs from what runs -> DOWNLOADING -> DOWNLOADED -> VERIFIED ->
#   UPDATING -> reset -> the new slot runs "pending": once a telemetry post is acknowledged
#   within self_test_s it confirms itself and reports UPDATED; otherwise it resets, the old slot
#   boots again and reports FAILED with the reason the new one left in ota.json.
# ota.json beside config.json keeps each slot's title and version (an image carries only
# MicroPython's), the update being tried and the package that failed (never fetched again until
# the assignment changes). ota_progress.json keeps a download's progress for resuming.
import asyncio
import json

from thingsboard.backoff import Backoff, within

from . import forget, loaded, save_json, use
from . import log as logs

KEYS = ("title", "version", "size", "checksum", "checksum_algorithm")


class Updates:
    def __init__(self, kind, board, cfg, factory, acked, boot=None):
        # factory: (title, version) of a slot ota.json knows nothing about (the one flashed or
        # deployed); acked: an Event set when the server acknowledges a telemetry post (the
        # self-test); boot: (running slot, on trial), read from the slots when not given. The
        # device is set once the network is up.
        self.kind = kind
        self.board = board
        self.device = None
        self.acked = acked
        self.opts = cfg["ota"]
        self.log = logs.Log(kind + "-ota")
        self._root = board.path("")
        self.running, self._pending = boot or self._slots("boot")  # fixed for this boot
        mine = self._state()[1]
        self.current = mine.get("slots", {}).get(self.running, list(factory))  # [title, version]
        self._attrs = {}  # the kind's shared attributes, without the prefix
        self._task = None  # the running download
        self._target = None  # its package identity
        self._trial = None
        self._ts = 0  # of the last report
        self._starting = True  # start() has reports to make (a trial's outcome)

    def begin(self):
        # at boot, before the network: a slot on trial must pass its self-test in time even
        # if it cannot join the network at all
        if self._pending:
            self._trial = asyncio.create_task(self._self_test())

    def _slots(self, what):
        # what the kind's slots (slots.py) say or do, with their code in RAM only meanwhile
        return use("firmware.slots", lambda s: getattr(s.of(self.kind, self.board), what)())

    # --- ota.json

    def _load(self, name):
        try:
            with open(self._root + name) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save(self, name, value):
        save_json(self._root + name, value)

    def _state(self):
        st = self._load("ota.json")
        return st, st.setdefault(self.kind, {})

    # --- boot

    def busy(self):
        # an update is running, a new slot is on trial or its outcome is being reported
        return (
            self._starting
            or self._trial is not None
            or (self._task is not None and not self._task.done())
        )

    async def start(self, quiet=False):
        # once the device runs. quiet: a sleeping board's wake, which reports nothing new and
        # takes the package attributes from the subscription's snapshot
        st, mine = self._state()
        trying = mine.get("trying")
        if trying and trying["slot"] != self.running:
            # the bootloader went back: the new slot never confirmed itself
            reason = trying.get("reason") or self._slots("why") or "it did not confirm itself"
            mine["failed"] = trying["pkg"]
            del mine["trying"]
            self._save("ota.json", st)
            await self._report("FAILED", "rolled back to %s: %s" % (self.current[1], reason))
        elif self._trial:
            await self._trial  # resets the board if it fails
            await self._confirmed()
        elif trying:  # confirmed before the UPDATED report went out
            await self._confirmed()
        elif not quiet:
            await self._report(None)
        self._starting = False
        self.device.subscribe_to_all_attributes(self._on_attributes)
        if quiet:
            return
        names = [self.kind + "_" + k for k in KEYS]
        backoff = Backoff(5000, 60000)
        while True:
            try:
                got = await self.device.request_attributes(shared_keys=names)
                break
            except Exception as e:
                self.log.warning("package attributes not read:", e)
                await asyncio.sleep_ms(backoff.next())
        self._attrs = {}
        self._on_attributes(got["shared"])

    async def _self_test(self):
        ms = self.opts["self_test_s"] * 1000
        self.log.info("new %s on trial: the server has %d s to answer" % (self.kind, ms // 1000))
        if not await within(self.acked.wait(), ms):
            st, mine = self._state()
            if "trying" in mine:
                why = "self-test failed: no telemetry acknowledged within %d s" % (ms // 1000)
                mine["trying"]["reason"] = why
                self._save("ota.json", st)
            self.log.error("self-test failed: resetting to roll back")
            self.board.reset()
        self._slots("confirm")
        self._trial = None

    async def _confirmed(self):
        st, mine = self._state()
        mine.pop("trying", None)
        mine.pop("failed", None)
        self._save("ota.json", st)
        self.log.info("%s %s confirmed" % tuple(self.current))
        await self._report("UPDATED")
        self._follow()  # an assignment that came during the trial

    # --- what the server assigns

    def _on_attributes(self, data):
        p = self.kind + "_"
        deleted = data.get("deleted")
        n = len(p)
        for k in deleted if isinstance(deleted, list) else ():
            if isinstance(k, str) and k.startswith(p):
                self._attrs.pop(k[n:], None)
        for k, v in data.items():
            if k.startswith(p):
                self._attrs[k[n:]] = v
        self._follow()

    def _follow(self):
        a = self._attrs
        pkg = [a.get(k) for k in KEYS] if "title" in a and "version" in a else None
        if pkg is None or pkg[:2] == self.current:
            if self._task:
                self.log.info("assignment removed: download stopped")
            self._stop()
            return
        if pkg == self._target:
            return  # already on it
        self._stop()
        _, mine = self._state()
        if pkg == mine.get("failed") or self._trial:
            return  # failed before: wait for another assignment; or a trial is running
        self._target = pkg
        self._task = asyncio.create_task(self._update(pkg))

    def _stop(self):
        if self._task:
            self._task.cancel()
        self._task = self._target = None

    # --- one update

    async def _update(self, pkg):
        # the update's code is in RAM only while it runs
        mark = loaded()
        try:
            from .fetch import update

            await update(self, pkg)
        finally:
            forget(mark)

    # --- reports

    async def _report(self, state, error=None):
        p = self.kind + "_"
        title, version = self.current
        values = {"current_" + p + "title": title, "current_" + p + "version": version}
        if state:
            values[p + "state"] = state
        if error:
            values[p + "error"] = error
        if self.board.time_set():  # stamped like the telemetry (a protobuf schema needs it)
            # one report per ms at most: the server keeps one value per key and timestamp
            self._ts = max(self.board.now_ms(), self._ts + 1)
            values = {"ts": self._ts, "values": values}
        for _ in range(5):  # the update goes on even if a report cannot be sent
            try:
                await self.device.send_telemetry(values)  # one message ID for its exchange
                return
            except Exception as e:
                self.log.warning("state %s not reported:" % state, e)
                await asyncio.sleep_ms(2000)
