# fetch.py: one update, from the assignment to the reset into the new slot: download (resuming
# where a power cut left it), verify, install, report each state. Imported only while an update
# runs (Updates._update in updates.py); the download and the writer come with it.
import asyncio
import json
import os

from micropython import const

from thingsboard.backoff import Backoff

from . import use
from .report import report

_SAVE_EVERY = const(16384)  # progress reaches flash at least every this many bytes


async def update(u, pkg):
    # u: the kind's Updates. Network failures resume later; anything else is final for pkg.
    backoff = Backoff(30000, 600000)
    while True:
        try:
            return await _fetch(u, pkg)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the reason goes to the server; the device runs on
            reason = str(e) or type(e).__name__
            u.log.error("update to %s %s failed:" % (pkg[0], pkg[1]), reason)
            if getattr(e, "retry", False):  # the network: resume later
                delay = backoff.next()
                await report(u, "FAILED", "%s; resuming in %d s" % (reason, delay // 1000))
                await asyncio.sleep_ms(delay)
                continue
            st, mine = u.state()
            mine["failed"] = pkg
            u._save("ota.json", st)
            _forget_progress(u)
            u.task = u.target = None
            await report(u, "FAILED", reason)
            return


async def _fetch(u, pkg):
    why = problem(pkg, u.kind)
    if why:
        raise ValueError(why)
    title, version, size, checksum, algorithm = pkg
    from ota.writer import Writer

    from .download import Download

    # where the image goes: the slots' code is in RAM only while that is read
    label, target, magic = use("firmware.slots", lambda m: _where(m.of(u.kind, u.board)))
    prog = u._load("ota_progress.json")
    offset = 0
    if prog.get("kind") == u.kind and prog.get("pkg") == pkg and prog.get("slot") == label:
        offset = prog["flashed"]
    # refuses a package that cannot fit (or cannot be verified) before writing anything
    sink = Writer(target, size, checksum, algorithm, offset, magic)
    prog = {"kind": u.kind, "pkg": pkg, "slot": label, "flashed": offset}
    if offset:
        u.log.info("resuming %s %s: %d bytes from %d" % (title, version, size, offset))
    else:
        u.log.info("downloading %s %s: %d bytes" % (title, version, size))
    await report(u, "DOWNLOADING")
    o = u.opts

    def saved(flashed):
        if flashed - prog["flashed"] >= _SAVE_EVERY or flashed == size:
            prog["flashed"] = flashed
            u._save("ota_progress.json", prog)

    d = Download(
        u.device,
        u.kind,
        {"title": title, "version": version, "size": size},
        sink,
        o["chunk_size"],
        o["window"],
        o["chunk_timeout_s"] * 1000,
        o["retries"],
        saved,
    )
    await d.run()
    await report(u, "DOWNLOADED")
    sink.finish()  # verify, read back, switch slots: raises if anything is off
    _forget_progress(u)
    await report(u, "VERIFIED")
    st, mine = u.state()
    mine.setdefault("slots", {})[label] = [title, version]
    mine["trying"] = {"slot": label, "pkg": pkg}
    u._save("ota.json", st)
    await report(u, "UPDATING")
    u.log.info("%s %s installed: resetting into it" % (title, version))
    u.board.reset()


def _where(slots):
    # -> (the slot's label, what the image is written to, the magic its first byte must be)
    return slots.next(), slots.target(), slots.magic


def _forget_progress(u):
    try:
        os.remove(u._root + "ota_progress.json")
    except OSError:
        pass


def problem(pkg, kind="fw"):
    # why the package [title, version, size, checksum, algorithm] that the <kind>_* shared
    # attributes name cannot be fetched, or None
    title, version, size, checksum, algorithm = pkg
    if not (isinstance(title, str) and isinstance(version, str) and title and version):
        return "%s_title and %s_version must be non-empty text" % (kind, kind)
    if type(size) is not int or size < 1:
        s = json.dumps(size)
        s = s if len(s) <= 20 else s[:17] + "..."
        return "package has no data (%s_size %s): a URL package?" % (kind, s)
    if not (isinstance(checksum, str) and checksum):
        return "package has no checksum: refused"
    if not (isinstance(algorithm, str) and algorithm):
        return "package has no %s_checksum_algorithm: refused" % kind
    return None
