# boot.py: the first file the board runs. No network and nothing that can fail, so no update or
# config can keep the REPL from coming up: it only puts the app slot a software update
# installed (lib/ota/appslot.py) first on sys.path, or rolls back one that never confirmed.
try:
    from ota import appslot

    appslot.choose()
except Exception as e:
    print("boot: app slot not chosen:", repr(e))
