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
# ROOT/fw_device.json's {"cycles", "warm", "rpcs", "every"} (tests/twin/scenarios.py).
import gc
import sys

gc.collect()
_BASE = gc.mem_alloc()


def run(root, cycles, warm, min_rpcs, every):
    import asyncio

    from firmware import app as app_mod
    from firmware.board import get

    n_samples = (cycles - warm) // every + 1 if cycles else 0
    st = {"n": 0, "rpcs": 0, "ready": 0, "rpcs0": 0, "samples": [0] * n_samples}

    class BenchApp(app_mod.App):
        def __init__(self, *args):
            super().__init__(*args)
            gc.collect()
            st["app"] = gc.mem_alloc()
            rpc = self.rpc

            def counted_rpc(method, params):  # the real handler, counted
                st["rpcs"] += 1
                return rpc(method, params)

            self.rpc = counted_rpc
            if not cycles:
                return
            t = self.telemetry
            cycle = t.cycle

            async def bench_cycle():
                try:
                    await cycle()
                except MemoryError:
                    print("E bench: MemoryError in a telemetry cycle")
                    sys.exit(7)
                t.interval = 0  # also undoes telemetry_interval set by the harness
                n = st["n"] = st["n"] + 1
                if n >= warm and (n - warm) % every == 0 and n <= cycles:
                    gc.collect()
                    i = (n - warm) // every
                    st["samples"][i] = gc.mem_alloc()
                    if n == warm:
                        st["rpcs0"] = st["rpcs"]
                if st["rpcs"] >= min_rpcs and not st["ready"]:
                    st["ready"] = n  # the last RPC is served: a few cycles for its reply
                if n >= cycles and st["ready"] and n - st["ready"] >= 20:
                    done(self, n)

            t.cycle = bench_cycle
            t.interval = 0

    def done(app, n):
        t = app.telemetry
        s = st["samples"]
        print("cycles", n)
        print("sent", t.sent)
        print("spooled", 0 if t.spool is None else len(t.spool))
        print("rpcs", st["rpcs"])
        print("rpcs_measured", st["rpcs"] - st["rpcs0"])
        print("heap_base", _BASE)
        print("heap_imports", st["imports"])
        print("heap_app", st["app"])
        print("heap_start", s[0])
        print("heap_end", s[-1])
        print("heap_samples", ",".join(str(x) for x in s))
        gc.collect()
        print("heap_total", gc.mem_alloc() + gc.mem_free())
        print("resubscribe", app.device.stats["resubscribe"])
        sys.exit(0)

    app_mod.App = BenchApp
    gc.collect()
    st["imports"] = gc.mem_alloc()
    asyncio.run(app_mod.main(get(root)))
    print("E bench: firmware main returned")
    sys.exit(8)


def board_main():
    # main.py's part (bench/fw_main.py): the settings are a file in the board's folder
    import json

    with open("fw_device.json") as f:
        s = json.load(f)
    run(None, s["cycles"], s["warm"], s["rpcs"], s["every"])


def main():
    a = sys.argv[1:]
    if a[0] == "imports":
        from fw_imports import imports

        imports()
    else:
        run(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))


if __name__ == "__main__":
    main()
