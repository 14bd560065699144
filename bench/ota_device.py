# ota_device.py: the OTA benchmark's driver on the MicroPython unix port (run by
# bench/ota_run.py). It boots the real firmware through firmware.app.main(board), unchanged.
# From outside it only wraps the board's reset(), which the firmware calls once a downloaded
# image is verified and made the boot slot, to print "key value" lines before the process ends
# (exit status 3, as the board's reset has it), and with SAMPLE_MS > 0 it runs a task beside
# the firmware that every SAMPLE_MS ms does gc.collect() then gc.mem_alloc(): the live heap
# between two steps of the firmware's tasks. Samples are kept apart by phase: "idle" from
# WARM_MS after start until a download begins (firmware.download is imported only then),
# "ota" from then on; the idle firmware runs the same telemetry and observations throughout.
# FLASH "plain" makes one more difference from outside: the simulated app partitions write
# straight through, skipping the simulation's NOR-flash check (a small scratch buffer and a
# memoryview per 256 bytes), as the ESP32's esp32.Partition (C) does.
#
# Usage (MICROPYPATH=<repo>/bench:<repo>:<repo>/lib:.frozen, cwd = ROOT):
#   micropython [-X heapsize=NK] -m ota_device run ROOT SAMPLE_MS WARM_MS sim|plain
#   micropython -m ota_device imports
#       gc.mem_alloc() retained by each module a download imports, once the firmware's are in
import gc
import sys


def imports():
    from fw_imports import retained

    import firmware.app  # noqa: F401  what the running firmware holds already
    import thingsboard.device  # noqa: F401  (imported by the app once it runs)

    print("import_total", retained("import", "firmware.download ota.writer"))


def plain_flash():
    from firmware.board.sim import flash

    ps = flash()

    P = ps.Partition
    writeblocks = P.writeblocks

    def write(self, block, buf, offset=None):
        if offset is None:  # the simple form (otadata): the simulation's own
            return writeblocks(self, block, buf)
        with open(ps._path(self.label), "r+b") as f:
            f.seek(self._span(block, offset, len(buf)))
            f.write(buf)

    P.writeblocks = write  # the simulation's erase allocates nothing already


def run(root, sample_ms, warm_ms, flash):
    import asyncio
    import time

    from firmware import app
    from firmware.board import get

    # small ints in a dict that never grows: keeping the figures allocates nothing
    st = {p + k: 0 for p in ("idle", "ota") for k in ("_n", "_max", "_min")}
    if flash == "plain":
        plain_flash()
    board = get(root)
    reset = board.reset

    def measured_reset():
        for k in sorted(st):
            print(k, st[k])
        gc.collect()
        print("heap_total", gc.mem_alloc() + gc.mem_free())
        reset()

    board.reset = measured_reset

    async def sampler():
        t0 = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(sample_ms)
            gc.collect()
            a = gc.mem_alloc()
            if "firmware.download" in sys.modules:
                phase = "ota"
            elif time.ticks_diff(time.ticks_ms(), t0) >= warm_ms:
                phase = "idle"
            else:
                continue
            n = st[phase + "_n"]
            st[phase + "_n"] = n + 1
            st[phase + "_max"] = max(st[phase + "_max"], a)
            st[phase + "_min"] = min(st[phase + "_min"], a) if n else a

    async def both():
        if sample_ms:
            asyncio.create_task(sampler())
        await app.main(board)

    asyncio.run(both())
    print("E bench: firmware main returned")
    sys.exit(8)


def main():
    a = sys.argv[1:]
    if a[0] == "imports":
        imports()
    else:
        run(a[1], int(a[2]), int(a[3]), a[4])


main()
