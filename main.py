# main.py: starts the firmware once boot.py has run (firmware/app.py does the work).
from firmware import app

app.run()
