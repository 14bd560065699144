"""Run one simulated device: the firmware on the MicroPython unix port with the simulated board
(firmware/board/sim.py) whose flash, pins and sensors are files in ROOT. Like a power supply
and a reset circuit, it starts the firmware again when it resets (exit status 3) or resets
softly (status 5), or wakes it from deep sleep (status 4, after the time in ROOT/sleep.json),
writing ROOT/reset_cause first.
Any other status (0: stopped, 1: crashed) ends the supervisor with that status. Ctrl-C and
SIGTERM end the firmware and then the supervisor (status 130, 143), without a traceback.

With --twin K it runs as on a board instead: on the ESP32 twin (tools/twin.py, 32-bit) with a
K KB heap, lib/ and firmware/ as the .mpy files `make deploy` ships (build/twin/mpy, linked
into ROOT where a board keeps them, as are boot.py and main.py). With --frozen as well, on the
frozen twin: lib/ and firmware/ come from its image, frozen by firmware/manifest.py as in a
custom board image; boot.py and main.py are still files.

Usage: python -m tools.simdevice ROOT [--main main.py] [--max-restarts N] [--time-scale F]
                                       [--twin K [--frozen]]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from firmware.board.parts_sim import EXIT_DEEPSLEEP, EXIT_RESET, EXIT_SOFT_RESET

REPO = Path(__file__).resolve().parent.parent
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
SIMBOOT = REPO / "tools" / "simboot.py"


TWIN_LIB = "lib"  # where the twin finds lib/ (a board: "/lib", which is the host's own here)


def host(main):
    """The runtime of a run on the unix port: (argv, MICROPYPATH), boot.py and main from here."""
    argv = [str(MICROPYTHON), str(SIMBOOT), str(REPO / "boot.py"), str(main)]
    return argv, "%s:%s:.frozen" % (REPO, REPO / "lib")


def twin(root, heap_k, frozen=False, main=REPO / "main.py"):
    """The runtime of a board-shaped run: (argv, MICROPYPATH) for the ESP32 twin with a heap of
    heap_k KB and the firmware as .mpy (built when missing or older than its source), or with
    frozen=True the frozen twin, whose image holds the firmware (built when it changed). boot.py
    and main (as main.py) are linked into root, and the twin's frozen simboot runs them by
    those names, which are all a board interns to start."""
    from tools import twin

    exe = twin.build(frozen)
    root.mkdir(parents=True, exist_ok=True)
    _link(root / "boot.py", REPO / "boot.py")
    _link(root / "main.py", main)
    argv = [str(exe), "-X", "heapsize=%dK" % heap_k, "-m", "simboot", "boot.py", "main.py"]
    if frozen:
        return argv, ".frozen"
    return argv, mount(root, deployed())


def _link(link, target):
    # link -> target, in place of an older link; the file itself, already there, stays
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        if link.samefile(target):
            return
        raise FileExistsError("%s: a file of its own, not a link to %s" % (link, target))
    link.symlink_to(target)


def deployed():
    """The .mpy files make deploy ships, compiled by the twin's mpy-cross (again when a source
    changed) and named where the twin finds them (lib/ at "lib", a board's "/lib") -> their
    folder."""
    from tools import deploy, twin

    out = twin.OUT / "mpy"
    deploy.build(out=out, cross=twin.MPY_CROSS, lib=TWIN_LIB)
    return out


def mount(root, out):
    """Link the .mpy tree out's firmware/ and lib/ into root, where a board keeps them, so that
    a module's file name (__file__, an interned string) is as long as on the board and costs
    the heap what it costs there; -> the MICROPYPATH that finds them, run from root."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("firmware", "lib"):
        _link(root / name, out / name)
    # the ESP32 port's sys.path is "", ".frozen", "/lib", as the unix port's with -m, and
    # TWIN_LIB stands for "/lib"
    return ".frozen:" + TWIN_LIB


def on_twin(root, code, timeout=60, env=None):
    """code as a board's main.py (no boot.py) on the ESP32 twin, in root with the deployed .mpy
    files (built already) where a board keeps them, with env's variables added -> the
    CompletedProcess, output captured."""
    from tools import twin

    path = mount(root, deployed())
    (root / "main.py").write_text(code)
    return subprocess.run(
        [str(twin.MICROPYTHON), "-m", "simboot", "main.py"],
        env=dict(env or {}, MICROPYPATH=path, PATH="/usr/bin:/bin"),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_once(root, runtime):
    env = dict(os.environ, COAPBOARD_ROOT=str(root))
    argv, env["MICROPYPATH"] = runtime
    child = subprocess.Popen(argv, env=env, cwd=str(root))
    try:
        return child.wait()
    finally:  # the supervisor stopped (Ctrl-C, SIGTERM): the device goes with it
        if child.poll() is None:
            child.terminate()
            child.wait()


def supervise(root, runtime, max_restarts=None, time_scale=1.0):
    root.mkdir(parents=True, exist_ok=True)
    cause = "power_on"
    restarts = 0
    while True:
        (root / "reset_cause").write_text(cause)
        status = run_once(root, runtime)
        if status == EXIT_RESET:
            cause, why = "hard_reset", "reset"
        elif status == EXIT_SOFT_RESET:
            cause, why = "soft_reset", "soft reset"
        elif status == EXIT_DEEPSLEEP:
            ms = json.loads((root / "sleep.json").read_text())["ms"]
            (root / "sleep.json").unlink()
            cause, why = "deepsleep", "deep sleep for %d ms" % ms
        else:
            why = {0: "stopped", 130: "interrupted"}.get(status, "crashed")
            print("simdevice: %s (status %d)" % (why, status), flush=True)
            return status
        if max_restarts is not None and restarts >= max_restarts:
            print(
                "simdevice: %s, but %d restarts already: giving up" % (why, restarts), flush=True
            )
            return status
        restarts += 1
        print("simdevice: %s, restart %d" % (why, restarts), flush=True)
        if status == EXIT_DEEPSLEEP:
            time.sleep(ms * time_scale / 1000)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("root", type=Path, help="the device's folder: config.json, spool, pins ...")
    ap.add_argument("--main", type=Path, default=REPO / "main.py", help="script the board runs")
    ap.add_argument("--max-restarts", type=int, help="stop after this many (default: no limit)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="deep sleep lasts ms * this")
    ap.add_argument("--twin", type=int, metavar="K", help="run on the ESP32 twin, K KB of heap")
    ap.add_argument("--frozen", action="store_true", help="with --twin: the firmware frozen in")
    a = ap.parse_args(argv)
    if a.frozen and not a.twin:
        ap.error("--frozen needs --twin K")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        root, main = a.root.resolve(), a.main.resolve()
        runtime = twin(root, a.twin, a.frozen, main) if a.twin else host(main)
        return supervise(root, runtime, a.max_restarts, a.time_scale)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
