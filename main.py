# main.py: starts the firmware once boot.py has run (firmware/app.py does the work). An error it
# does not catch is logged and the board resets (firmware/crash.py): never silent at the REPL.
try:
    from firmware import app

    app.run()
except Exception as e:
    from firmware import crash

    crash.handle(e)
