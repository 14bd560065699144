# fw_imports.py: `micropython -m fw_device imports` (bench/fw_device.py): gc.mem_alloc()
# retained by each import (after gc.collect()), in dependency order; then each module the
# firmware loads only when needed, on top of those. Lines "import NAME BYTES NEW MODULES ...",
# "import_total", "heap_after_imports", "later NAME BYTES ...".
import gc
import sys


def retained(heading, modules):
    # one line per import: the heap it retains and the modules it adds; -> the sum
    total = 0
    for name in modules.split():
        before = set(sys.modules)
        gc.collect()
        a = gc.mem_alloc()
        __import__(name)
        gc.collect()
        d = gc.mem_alloc() - a
        total += d
        new = sorted(m for m in sys.modules if m not in before)
        print(heading, name, d, *new)
    return total


# The modules by name, one string each list: frozen into the twin, a shorter string would be a
# name in its ROM, which the firmware's import would find there where a board interns it
def imports():
    # bottom-up, so each line counts the modules that import adds (listed) and nothing twice
    order = """asyncio coap.codec coap.client thingsboard.device thingsboard.jsonpayload
        firmware.log firmware.sensors firmware.gpio firmware.spool firmware.telemetry
        firmware.board firmware.board.sim firmware.updates firmware.app"""
    print("import_total", retained("import", order))
    gc.collect()
    print("heap_after_imports", gc.mem_alloc())
    # loaded only for a job: the checker at a boot that finds config.json changed (firmware/
    # checked.py), the payload or the transport a config asks for, a boot's update reports,
    # an update, the named errors of a failed request
    later = """firmware.config thingsboard.protopayload coap.dtls firmware.coaps
        firmware.slots firmware.trial firmware.fetch firmware.download ota.writer
        firmware.bundle thingsboard.errors"""
    retained("later", later)
