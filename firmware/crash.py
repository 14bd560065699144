# crash.py: main.py's last resort, for an error nothing else caught (imported only then). On an
# ESP32 such an error leaves the board at the REPL with no reset (ports/esp32/main.c runs
# main.py, then the REPL), silent until someone power-cycles it, and an image on trial stays
# unconfirmed all that time. Instead: the error is logged and kept in last_error (the next boot
# reports it to the server), an app slot on trial is abandoned and the previous one runs, and
# otherwise the board resets after DELAY_MS, which also lets the bootloader roll back a
# firmware image on trial. Ctrl-C during the wait keeps the REPL for a technician.
import sys

from .log import Log

DELAY_MS = 10000
KEPT = 200  # characters of the error kept for the next boot


def handle(e):
    import gc
    import time

    gc.collect()  # the failed app's objects: a MemoryError must not strike again here
    from . import board as boards

    log = Log("app")
    board = boards.get()
    e = _rollback(e)
    if e is None:  # the previous slot ran and stopped on its own (a config error)
        return
    sys.print_exception(e)
    text = repr(e)[:KEPT]
    try:
        with open(board.path("last_error"), "w") as f:
            f.write(text)
    except OSError:  # a full or broken filesystem: the reset matters more
        pass
    log.error("uncaught %s, reset in %d s (Ctrl-C keeps the REPL)" % (text, DELAY_MS // 1000))
    time.sleep_ms(DELAY_MS)
    board.reset()


def _rollback(e):
    # an app slot on trial that cannot start: the previous slot runs instead (lib/ota/appslot.py)
    # -> the error that remains: e, or the previous slot's own, or None when it stopped
    from ota import appslot

    if not appslot.rollback(repr(e)):
        return e
    try:
        from firmware import app

        app.run()
        return None
    except Exception as e2:
        return e2
