# fw_device.py: the firmware benchmark driver on MicroPython: bench/fw_run.py runs it on the
# unix port, tests/twin and bench/twin_heap.py on the ESP32 twin (frozen into it, so the heap
# holds the firmware's code and none of the driver's). It boots the real firmware through
# firmware.app.main(board), unchanged, with one difference made from outside: app.App is
# swapped for a subclass that, after the real constructor, counts the RPCs it serves and, with
# CYCLES > 0, sets the telemetry interval to 0 ms (set_interval refuses < 1 s) and wraps
# telemetry.cycle (an instance attribute shadowing the method) to count cycles and sample the
# heap at cycle boundaries. App.run(), the observations, the RPC handler and Telemetry.run()
# are the real ones.
#
# Usage (MICROPYPATH=<repo>/bench:<repo>:<repo>/lib:.frozen, cwd = ROOT):
#   micropython [-X heapsize=NK] -m fw_device run ROOT CYCLES WARM MIN_RPCS EVERY
#       CYCLES > 0: cycles as fast as the loop goes; after CYCLES cycles (and at least MIN_RPCS
#       RPCs served, 20 cycles before) prints "key value" lines and exits 0. At cycle WARM, and
#       every EVERY cycles after it, gc.collect() then gc.mem_alloc() is recorded.
#       CYCLES = 0: the configured interval, runs until killed (for the RPC round trip).
#   micropython -m fw_device imports
#       gc.mem_alloc() retained by each import (fw_imports.py, a module of its own: a run does
#       not carry its code).
# As main.py of a simulated board on the twin (bench/fw_main.py; python -m tools.simdevice ROOT
# --twin K --main bench/fw_main.py): the same run, after boot.py, with
# ROOT/fw_device.json's [CYCLES, WARM, MIN_RPCS, EVERY] (tests/twin/scenarios.py).
import gc
import sys

gc.collect()
_BASE = gc.mem_alloc()

# The firmware's names the driver uses, spelt at run time (split from one string): frozen into
# the twin, a name in the driver's code would be in the twin's ROM, and the firmware would find
# it there where a board interns it (tests/twin/test_board.py checks that none is there)
(
    FW_APP_MODULE,
    FW_BOARD_MODULE,
    FW_APP,
    FW_TELEMETRY,
    FW_RPC,
    FW_CYCLE,
    FW_INTERVAL,
    FW_SENT,
    FW_SPOOL,
    FW_DEVICE,
    FW_RESUBSCRIBE,
) = """firmware.app firmware.board App telemetry rpc cycle interval sent spool device
    resubscribe""".split()


def run(folder, cycles, warm, min_rpcs, every):
    import asyncio

    app_mod = __import__(FW_APP_MODULE, None, None, ("_",))
    get = __import__(FW_BOARD_MODULE, None, None, ("_",)).get

    n_samples = (cycles - warm) // every + 1 if cycles else 0
    st = {"n": 0, "served": 0, "ready_at": 0, "served0": 0, "samples": [0] * n_samples}

    class BenchApp(getattr(app_mod, FW_APP)):
        def __init__(self, *args):
            super().__init__(*args)
            gc.collect()
            st["at_app"] = gc.mem_alloc()
            rpc = getattr(self, FW_RPC)

            def counted_rpc(method, args):  # the real handler, counted
                st["served"] += 1
                return rpc(method, args)

            setattr(self, FW_RPC, counted_rpc)
            if not cycles:
                return
            t = getattr(self, FW_TELEMETRY)
            cycle = getattr(t, FW_CYCLE)

            async def bench_cycle():
                try:
                    await cycle()
                except MemoryError:
                    print("E bench: MemoryError in a telemetry cycle")
                    sys.exit(7)
                setattr(t, FW_INTERVAL, 0)  # also undoes telemetry_interval set by the harness
                n = st["n"] = st["n"] + 1
                if n >= warm and (n - warm) % every == 0 and n <= cycles:
                    gc.collect()
                    i = (n - warm) // every
                    st["samples"][i] = gc.mem_alloc()
                    if n == warm:
                        st["served0"] = st["served"]
                if st["served"] >= min_rpcs and not st["ready_at"]:
                    st["ready_at"] = n  # the last RPC is served: a few cycles for its reply
                if n >= cycles and st["ready_at"] and n - st["ready_at"] >= 20:
                    done(self, n)

            setattr(t, FW_CYCLE, bench_cycle)
            setattr(t, FW_INTERVAL, 0)

    def done(bench, n):
        t = getattr(bench, FW_TELEMETRY)
        spool = getattr(t, FW_SPOOL)
        s = st["samples"]
        gc.collect()
        total = gc.mem_alloc() + gc.mem_free()
        stats = getattr(bench, FW_DEVICE).stats
        served = st["served"]
        values = (n, getattr(t, FW_SENT), 0 if spool is None else len(spool), served)
        values += (served - st["served0"], _BASE, st["at_imports"], st["at_app"], s[0], s[-1])
        values += (" ".join(str(x) for x in s), total, stats[FW_RESUBSCRIBE])
        print(
            "cycles %d\nsent %d\nspooled %d\nrpcs %d\nrpcs_measured %d\nheap_base %d\n"
            "heap_imports %d\nheap_app %d\nheap_start %d\nheap_end %d\nheap_samples %s\n"
            "heap_total %d\nresubscribe %d" % values
        )
        sys.exit(0)

    setattr(app_mod, FW_APP, BenchApp)
    gc.collect()
    st["at_imports"] = gc.mem_alloc()
    asyncio.run(app_mod.main(get(folder)))
    print("E bench: firmware main returned")
    sys.exit(8)


def board_main():
    # main.py's part (bench/fw_main.py): the settings are a file in the board's folder
    import json

    with open("fw_device.json") as f:
        s = json.load(f)
    run(None, *s)


def main():
    a = sys.argv[1:]
    if a[0] == "imports":
        from fw_imports import imports

        imports()
    else:
        run(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))


if __name__ == "__main__":
    main()
