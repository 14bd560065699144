# simboot.py: what MicroPython does at power on, for the unix port: run boot.py, then main.py
# (tools/simdevice.py starts every boot of a simulated device through this).
import sys

try:
    for _path in sys.argv[1:3]:
        with open(_path) as _f:
            exec(_f.read())
except KeyboardInterrupt:  # Ctrl-C at the terminal switches the board off: no traceback
    sys.exit(130)
