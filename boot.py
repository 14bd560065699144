# boot.py: the first file the board runs. No network and nothing that can fail, so no update or
# config can keep the REPL from coming up: it only puts the app slot a software update
# installed (lib/ota/appslot.py) first on sys.path, or rolls back one that never confirmed.
# It also runs on every soft reset (Ctrl-D, mpremote's raw REPL), which must not end a trial.
# main.py and the REPL share its globals: it leaves nothing in them.
def _choose():
    from ota import appslot

    from firmware.board import soft_reset

    appslot.choose(soft=soft_reset())


try:
    _choose()
except Exception as e:
    print("boot: app slot not chosen:", repr(e))
    del e
del _choose
