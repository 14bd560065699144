# simboot.py: what MicroPython does at power on, for the unix port: run boot.py, then main.py
# (tools/simdevice.py starts every boot of a simulated device through this; the ESP32 twin has
# it frozen in and runs it with -m, so that it costs the heap nothing). As on an ESP32, an
# error main.py lets through is not a reset (ports/esp32/main.c goes on to the REPL): the process
# ends with status 1 and the supervisor does not start it again.
# With SIMBOOT_NAMES set, the interned names are counted as the process ends, whatever ends it
# (bench/twin_heap.py --names); SIMBOOT_NAMES=2 lists them too, and the modules loaded then.
import os
import sys

sys.path[0] = ""  # as on a board, the current folder: the unix port puts a script's there

try:
    for _path in sys.argv[1:3]:
        with open(_path) as _f:
            exec(_f.read())
except KeyboardInterrupt:  # Ctrl-C at the terminal switches the board off: no traceback
    sys.exit(130)
finally:
    _listing = os.getenv("SIMBOOT_NAMES")
    if _listing:
        import micropython

        if _listing == "2":  # which: the modules loaded now and each name ("Q(name)" lines)
            print("modules:", " ".join(sorted(sys.modules)))
        micropython.qstr_info(_listing == "2")  # "qstr pool: n_pool=5, n_qstr=593, ..."
