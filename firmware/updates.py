# updates.py: ThingsBoard OTA (transport reference §6), the part that stays in RAM: what runs,
# following the fw_*/sw_* assignment. What runs now and then is imported only while it runs: a
# boot's start, a trial and the state reports (trial.py), an update itself (fetch.py, with
# download.py and lib/ota's writer), the slots (slots.py).
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
        mine = self.state()[1]
        self.current = mine.get("slots", {}).get(self.running, list(factory))  # [title, version]
        self._attrs = {}  # the kind's shared attributes, without the prefix
        self.task = None  # the running download
        self.target = None  # its package identity
        self._trial = None
        self._ts = 0  # of the last report
        self._starting = True  # start() has reports to make (a trial's outcome)

    def begin(self):
        # at boot, before the network: a slot on trial must pass its self-test in time even
        # if it cannot join the network at all
        if self._pending:
            self._trial = asyncio.create_task(self._run("trial", "self_test"))

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

    def state(self):
        st = self._load("ota.json")
        return st, st.setdefault(self.kind, {})

    # --- boot

    def busy(self):
        # an update is running, a new slot is on trial or its outcome is being reported
        return (
            self._starting
            or self._trial is not None
            or (self.task is not None and not self.task.done())
        )

    async def start(self, quiet=False):
        # once the device runs (trial.py): a trial's outcome, the package attributes. quiet: a
        # sleeping board's wake, which reports nothing new
        await self._run("trial", "start", quiet)

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
            if self.task:
                self.log.info("assignment removed: download stopped")
            self.stop()
            return
        if pkg == self.target:
            return  # already on it
        self.stop()
        _, mine = self.state()
        if pkg == mine.get("failed") or self._trial:
            return  # failed before: wait for another assignment; or a trial is running
        self.target = pkg
        self.task = asyncio.create_task(self._update(pkg))

    def stop(self):
        if self.task:
            self.task.cancel()
        self.task = self.target = None

    # --- one update

    async def _update(self, pkg):
        await self._run("fetch", "update", pkg)

    async def _run(self, module, job, *args):
        # await module.job(self, *args): what runs now and then is in RAM only while it runs
        mark = loaded()
        try:
            await getattr(__import__("firmware." + module, None, None, ("_",)), job)(self, *args)
        finally:
            forget(mark)
