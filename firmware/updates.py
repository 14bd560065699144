# updates.py: ThingsBoard OTA (transport reference §6), the part that runs on every boot. The
# download is in download.py and the image writer in lib/ota, imported only when a package has
# to be fetched.
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
import os

from ota import MAGIC, appslot, rollback

from . import log as logs

KEYS = ("title", "version", "size", "checksum", "checksum_algorithm")
_SAVE_EVERY = 16384  # progress reaches flash at least every this many bytes


class Updates:
    def __init__(self, kind, slots, board, cfg, factory, acked):
        # slots: the kind's two-slot store (FirmwareSlots or AppSlots below); factory: (title,
        # version) of a slot ota.json knows nothing about (the one flashed or deployed); acked:
        # an Event set when the server acknowledges a telemetry post (the self-test). The
        # device is set once the network is up.
        self.kind = kind
        self.slots = slots
        self.board = board
        self.device = None
        self.acked = acked
        self.opts = cfg["ota"]
        self.log = logs.Log(kind + "-ota")
        self._root = board.path("")
        self.running = slots.running()  # both fixed for this boot
        mine = self._state()[1]
        self.current = mine.get("slots", {}).get(self.running, list(factory))  # [title, version]
        self._attrs = {}  # the kind's shared attributes, without the prefix
        self._task = None  # the running download
        self._target = None  # its package identity
        self._trial = None
        self._ts = 0  # of the last report

    def begin(self):
        # at boot, before the network: a slot on trial must pass its self-test in time even
        # if it cannot join the network at all
        if self.slots.pending():
            self._trial = asyncio.create_task(self._self_test())

    # --- ota.json

    def _load(self, name):
        try:
            with open(self._root + name) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save(self, name, value):
        path = self._root + name
        with open(path + ".tmp", "w") as f:
            json.dump(value, f)
        os.rename(path + ".tmp", path)

    def _state(self):
        st = self._load("ota.json")
        return st, st.setdefault(self.kind, {})

    # --- boot

    async def start(self):
        # once the device runs
        st, mine = self._state()
        trying = mine.get("trying")
        if trying and trying["slot"] != self.running:
            # the bootloader went back: the new slot never confirmed itself
            reason = trying.get("reason") or self.slots.why() or "it did not confirm itself"
            mine["failed"] = trying["pkg"]
            del mine["trying"]
            self._save("ota.json", st)
            await self._report("FAILED", "rolled back to %s: %s" % (self.current[1], reason))
        elif self._trial:
            await self._trial  # resets the board if it fails
            await self._confirmed()
        elif trying:  # confirmed before the UPDATED report went out
            await self._confirmed()
        else:
            await self._report(None)
        self.device.subscribe_to_all_attributes(self._on_attributes)
        names = [self.kind + "_" + k for k in KEYS]
        while True:
            try:
                got = await self.device.request_attributes(shared_keys=names)
                break
            except Exception as e:
                self.log.warning("package attributes not read:", e)
                await asyncio.sleep_ms(5000)
        self._attrs = {}
        self._on_attributes(got["shared"])

    async def _self_test(self):
        ms = self.opts["self_test_s"] * 1000
        self.log.info("new %s on trial: the server has %d s to answer" % (self.kind, ms // 1000))
        try:
            await asyncio.wait_for_ms(self.acked.wait(), ms)
        except asyncio.TimeoutError:
            st, mine = self._state()
            if "trying" in mine:
                why = "self-test failed: no telemetry acknowledged within %d s" % (ms // 1000)
                mine["trying"]["reason"] = why
                self._save("ota.json", st)
            self.log.error("self-test failed: resetting to roll back")
            self.board.reset()
        self.slots.confirm()
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
        delay = 30000
        while True:
            try:
                return await self._fetch(pkg)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the reason goes to the server; the device runs on
                reason = str(e) or type(e).__name__
                self.log.error("update to %s %s failed:" % (pkg[0], pkg[1]), reason)
                if getattr(e, "retry", False):  # the network: resume later
                    await self._report("FAILED", "%s; resuming in %d s" % (reason, delay // 1000))
                    await asyncio.sleep_ms(delay)
                    delay = min(delay * 2, 600000)
                    continue
                st, mine = self._state()
                mine["failed"] = pkg
                self._save("ota.json", st)
                self._forget_progress()
                self._task = self._target = None
                await self._report("FAILED", reason)
                return

    async def _fetch(self, pkg):
        why = problem(pkg, self.kind)
        if why:
            raise ValueError(why)
        title, version, size, checksum, algorithm = pkg
        from ota.writer import Writer

        from .download import Download

        prog = self._load("ota_progress.json")
        label = self.slots.next()
        offset = 0
        if prog.get("kind") == self.kind and prog.get("pkg") == pkg and prog.get("slot") == label:
            offset = prog["flashed"]
        # refuses a package that cannot fit (or cannot be verified) before writing anything
        sink = Writer(self.slots.target(), size, checksum, algorithm, offset, self.slots.magic)
        prog = {"kind": self.kind, "pkg": pkg, "slot": label, "flashed": offset}
        self.log.info(
            "%s %s %s: %d bytes%s"
            % (
                "resuming" if offset else "downloading",
                title,
                version,
                size,
                " from %d" % offset if offset else "",
            )
        )
        await self._report("DOWNLOADING")
        o = self.opts

        def saved(flashed):
            if flashed - prog["flashed"] >= _SAVE_EVERY or flashed == size:
                prog["flashed"] = flashed
                self._save("ota_progress.json", prog)

        d = Download(
            self.device,
            self.kind,
            {"title": title, "version": version, "size": size},
            sink,
            o["chunk_size"],
            o["window"],
            o["chunk_timeout_s"] * 1000,
            o["retries"],
            saved,
        )
        await d.run()
        await self._report("DOWNLOADED")
        sink.finish()  # verify, read back, switch slots: raises if anything is off
        self._forget_progress()
        await self._report("VERIFIED")
        st, mine = self._state()
        mine.setdefault("slots", {})[label] = [title, version]
        mine["trying"] = {"slot": label, "pkg": pkg}
        self._save("ota.json", st)
        await self._report("UPDATING")
        self.log.info("%s %s installed: resetting into it" % (title, version))
        self.board.reset()

    def _forget_progress(self):
        try:
            os.remove(self._root + "ota_progress.json")
        except OSError:
            pass

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
                await self.device.send_telemetry(values, 10000)
                return
            except Exception as e:
                self.log.warning("state %s not reported:" % state, e)
                await asyncio.sleep_ms(2000)


def problem(pkg, kind="fw"):
    # why the package [title, version, size, checksum, algorithm] that the <kind>_* shared
    # attributes name cannot be fetched, or None
    title, version, size, checksum, algorithm = pkg
    if not (isinstance(title, str) and isinstance(version, str) and title and version):
        return "%s_title and %s_version must be non-empty text" % (kind, kind)
    if type(size) is not int or size < 1:
        return "package has no data (%s_size %s): a URL package?" % (kind, _short(size))
    if not (isinstance(checksum, str) and checksum):
        return "package has no checksum: refused"
    if not (isinstance(algorithm, str) and algorithm):
        return "package has no %s_checksum_algorithm: refused" % kind
    return None


def _short(v):
    s = json.dumps(v)
    return s if len(s) <= 20 else s[:17] + "..."


class FirmwareSlots:
    # the app partitions, through the board's esp32.Partition
    magic = MAGIC  # an ESP32 app image

    def __init__(self, partition):
        self.P = partition

    def running(self):
        P = self.P
        return P(P.RUNNING).info()[4]

    def target(self):
        # the partition an update is written to (its set_boot switches to it)
        P = self.P
        return P(P.RUNNING).get_next_update()

    def next(self):
        return self.target().info()[4]

    def pending(self):
        try:
            return rollback.pending(self.P)
        except (OSError, IndexError):  # a build without OTA partitions: never pending
            return False

    def confirm(self):
        rollback.cancel(self.P)

    def why(self):
        return None  # the bootloader keeps no reason


class AppSlots:
    # app bundles: the app slots of lib/ota/appslot.py, filled by bundle.py
    magic = None  # a bundle checks its own when it is unpacked

    def __init__(self, root):
        self.root = root

    def running(self):
        return appslot.running(self.root) or "factory"

    def target(self):
        # the bundle store: its set_boot unpacks into the next slot and points boot.py at it
        from .bundle import BundleStore

        st = os.statvfs(self.root or ".")
        room = st[0] * st[4] // 2  # half the free flash: the download, then its unpacked files
        return BundleStore(self.root, self.next(), room)

    def next(self):
        return appslot.other(self.root)

    def pending(self):
        return appslot.pending(self.root)

    def confirm(self):
        appslot.confirm(self.root)

    def why(self):
        return appslot.read(self.root).get("reason")
