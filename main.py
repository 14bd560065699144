# main.py: starts the firmware once boot.py has run (firmware/app.py does the work). An app that
# fails while on trial (a software update that cannot even start) is abandoned for the previous
# app slot at once, and that one runs (lib/ota/appslot.py).
try:
    from firmware import app

    app.run()
except Exception as e:
    from ota import appslot

    if not appslot.rollback(repr(e)):
        raise
    from firmware import app

    app.run()
