# appslot: A/B slots for the app's own files, with the bootloader's rollback rules.
# A software update (an app bundle, firmware/bundle.py) unpacks into apps/a or apps/b; the
# deployed files (/lib, /firmware) are the factory slot "". apps/slot.json says which runs:
#   {"run": "a", "prev": "", "state": "new" | "trying" | "valid"}
# choose(), from boot.py at every boot and soft reset, puts the running slot first on
# sys.path. A slot that was set "new" runs once as "trying"; if it is still "trying" at the
# next boot it never confirmed itself, so the previous slot runs again: as esp32.Partition's
# rollback does. A soft reset is no boot (no bootloader ran): it changes nothing.
import json
import os
import sys

from micropython import const

_FILE = const("apps/slot.json")


def read(root=""):
    try:
        with open(root + _FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"run": "", "prev": "", "state": "valid"}


def _write(root, st):
    path = root + _FILE
    with open(path + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(path + ".tmp", path)  # atomic: a power cut leaves the old or the new pointer


_APP = const(("firmware", "coap", "thingsboard", "ota"))  # the packages a slot holds


def choose(root="", soft=False):
    # at boot: apply the rollback rule, then make the running slot's files win imports. After
    # a soft reset (boot.py runs again, no bootloader did) the slot that ran goes on as it was
    st = read(root)
    run = st["run"]
    if soft:
        if st["state"] == "new":  # installed during this boot: it starts at the next one
            run = st["prev"]
    elif st["state"] == "trying":  # booted once and never confirmed: back to the previous one
        run = _abandon(root, st, "it never confirmed itself")["run"]
    elif st["state"] == "new":
        st["state"] = "trying"
        _write(root, st)
    _use(root, run)
    return run


def rollback(reason, root=""):
    # the app on trial failed (it could not even start): choose the previous slot now, so the
    # next import of the app comes from there. False when no slot is on trial.
    st = read(root)
    if st["state"] != "trying":
        return False
    print("appslot: app in slot %s failed on trial, back to the previous one:" % st["run"], reason)
    _use(root, _abandon(root, st, reason)["run"])
    return True


def _abandon(root, st, reason):
    st = {"run": st["prev"], "prev": "", "state": "valid", "aborted": st["run"], "reason": reason}
    _write(root, st)
    return st


def _use(root, run):
    base = root + "apps/"
    sys.path[:] = [p for p in sys.path if not p.startswith(base)]
    if run:
        sys.path.insert(0, base + run + "/lib")
        sys.path.insert(0, base + run)
    for name in list(sys.modules):  # loaded from another slot (this module too): forget them
        if name.split(".")[0] in _APP:
            del sys.modules[name]


def running(root=""):
    return read(root)["run"]


def other(root=""):
    # the slot an update goes to: never the running one, nor the one kept to go back to
    return "b" if running(root) == "a" else "a"


def pending(root=""):
    return read(root)["state"] == "trying"


def set_boot(root, slot):
    # the next boot tries `slot`; the running one is kept to go back to
    _write(root, {"run": slot, "prev": running(root), "state": "new"})


def confirm(root=""):
    st = read(root)
    if st["state"] == "trying":
        st["state"] = "valid"
        _write(root, st)
