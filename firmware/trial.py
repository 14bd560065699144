# trial.py: the part of updates.py that runs once a boot, imported only then (Updates._run): a
# new slot's self-test, the outcome of a trial reported at start (report.py) and the package
# attributes read once.
import asyncio

from thingsboard.backoff import Backoff, within

from .report import report
from .updates import KEYS


async def start(u, quiet=False):
    # u: the kind's Updates, once the device runs. quiet: a sleeping board's wake, which
    # reports nothing new and takes the package attributes from the subscription's snapshot
    st, mine = u.state()
    trying = mine.get("trying")
    if trying and trying["slot"] != u.running:
        # the bootloader went back: the new slot never confirmed itself
        reason = trying.get("reason") or u._slots("why") or "it did not confirm itself"
        mine["failed"] = trying["pkg"]
        del mine["trying"]
        u._save("ota.json", st)
        await report(u, "FAILED", "rolled back to %s: %s" % (u.current[1], reason))
    elif u._trial:
        await u._trial  # resets the board if it fails
        await _confirmed(u)
    elif trying:  # confirmed before the UPDATED report went out
        await _confirmed(u)
    elif not quiet:
        await report(u, None)
    u._starting = False
    u.device.subscribe_to_all_attributes(u._on_attributes)
    if quiet:
        return
    names = [u.kind + "_" + k for k in KEYS]
    backoff = Backoff(5000, 60000)
    while True:
        try:
            got = await u.device.request_attributes(shared_keys=names)
            break
        except Exception as e:
            u.log.warning("package attributes not read:", e)
            await asyncio.sleep_ms(backoff.next())
    u._attrs = {}
    u._on_attributes(got["shared"])


async def self_test(u):
    ms = u.opts["self_test_s"] * 1000
    u.log.info("new %s on trial: the server has %d s to answer" % (u.kind, ms // 1000))
    if not await within(u.acked.wait(), ms):
        st, mine = u.state()
        if "trying" in mine:
            why = "self-test failed: no telemetry acknowledged within %d s" % (ms // 1000)
            mine["trying"]["reason"] = why
            u._save("ota.json", st)
        u.log.error("self-test failed: resetting to roll back")
        u.board.reset()
    u._slots("confirm")
    u._trial = None


async def _confirmed(u):
    st, mine = u.state()
    mine.pop("trying", None)
    mine.pop("failed", None)
    u._save("ota.json", st)
    u.log.info("%s %s confirmed" % tuple(u.current))
    await report(u, "UPDATED")
    u._follow()  # an assignment that came during the trial
