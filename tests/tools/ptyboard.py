# ptyboard.py: the MicroPython unix port run as an ESP32 runs MicroPython, between socat's pty
# (stdin/stdout here: the board's serial line) and the unix port on a pty of its own.
#   python3 ptyboard.py MICROPYTHON RESTARTS BOOT STATUS   (STATUS: a file name for its use)
# BOOT=1: power on runs boot.py and main.py as an ESP32's does; BOOT=0: the board powers on to
# the REPL, as one whose firmware has stopped. (A Ctrl-C that lands in a garbage collection
# can crash this unix port build, "FATAL: uncaught NLR": tests interrupt no firmware.)
# As ports/esp32/main.c (v1.28.0) does in its soft_reset loop: every start runs boot.py
# (pyexec_file_if_exists("boot.py"), main.c:152), then main.py only if boot.py ran without
# an error and the REPL was the friendly one (main.c:161-162:
# `pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL && ret != 0`), then the REPL in the mode it
# was in (main.c:168-179). A soft reset (Ctrl-D in either REPL, shared/runtime/pyexec.c:599-604
# and 674-679, or SystemExit) prints "MPY: soft reboot" (main.c:217) and starts over, with
# reset_cause soft_reset. The unix port ends the process where the ESP32 loops, so a soft reset
# here is a new process, told the REPL's mode: the last banner the board printed says it.
# EXIT_RESET (firmware/board/parts_sim.py: how sim.py's reset() ends) is a hard reset: with
# RESTARTS=1 the board boots again with reset_cause hard_reset, else it stays off. Any other
# SystemExit is a soft reset, as on the ESP32; a crash (a signal) leaves the board off.
import os
import pty
import select
import sys
import termios
import tty

EXIT_RESET = 3
RAW = b"raw REPL; CTRL-B to exit\r\n"  # pyexec.c:557
FRIENDLY = b'Type "help()" for more information.\r\n'  # pyexec.c:628
# Runs boot.py then main.py (those present) as the board does, Ctrl-C interrupting them: the
# pty's ISIG is on only meanwhile, as a Ctrl-C outside MicroPython's own handler (before it
# runs, or after it until the REPL reads) would end the unix port. A SystemExit would make the
# unix port's -i go on to the REPL: the status goes to the supervisor, which ends the process.
BOOT = """import os
os.system("stty isig noflsh")
try:
    for _f in %r:
        try:
            _s = open(_f).read()
        except OSError:
            continue
        exec(_s)
except SystemExit as _e:
    with open(%r, "w") as _x:
        _x.write(str((_e.args or (0,))[0]))
    os.system("kill -9 $PPID")
finally:
    os.system("stty -isig")
"""


def start(mp, files, status):
    # the unix port on a raw pty (set by both sides: whichever runs first, no byte goes
    # through the default mode)
    pid, fd = pty.fork()
    tty.setraw(0 if pid == 0 else fd, termios.TCSANOW)  # no flush: keep what was typed
    if pid == 0:
        os.execv(mp, [mp, "-i", "-c", BOOT % (files, status)])
    return pid, fd


def serve(fd):
    # pass bytes both ways until the unix port ends -> (REPL mode at its end, False at EOF).
    # What comes in before the boot code set ISIG (or before anything was printed: it sets
    # ISIG first) waits for it, so that a Ctrl-C interrupts boot.py and main.py as on the ESP32.
    raw, tail, held, up = False, b"", b"", False
    while True:
        ready = select.select([0, fd], [], [], 0.02 if held else None)[0]
        if 0 in ready:
            data = os.read(0, 4096)
            if not data:  # socat closed the line
                return raw, False
            held += data
        up = up or bool(termios.tcgetattr(fd)[3] & termios.ISIG)
        if held and up:
            os.write(fd, held)
            held = b""
        if fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the unix port ended
                data = b""
            if not data:
                return raw, True
            os.write(1, data)
            up = True
            seen = tail + data
            r, f = seen.rfind(RAW), seen.rfind(FRIENDLY)
            if r >= 0 or f >= 0:
                raw = r > f
            tail = seen[-len(FRIENDLY) :]


def exit_status(pid, status):
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        with open(status) as f:
            code = int(f.read())
        os.remove(status)
    except OSError:
        pass
    return code


def cause(name):
    with open("reset_cause.tmp", "w") as f:
        f.write(name)
    os.rename("reset_cause.tmp", "reset_cause")
    if name != "soft_reset":  # the image the last boot ran: gone with the power (sim.py)
        forget_running()


def forget_running():
    try:
        os.remove("running")
    except FileNotFoundError:
        pass


def main(mp, restarts, boot, status):
    forget_running()
    files, raw = ["boot.py", "main.py"] if boot else [], False  # power on
    while True:
        pid, fd = start(mp, files, status)
        if raw:  # the REPL a soft reset in the raw REPL comes back to (main.c:169)
            os.write(fd, b"\x01")
        raw, alive = serve(fd)
        if not alive:
            os.kill(pid, 9)
        code = exit_status(pid, status)
        os.close(fd)
        if not alive or code < 0 or (code == EXIT_RESET and not restarts):
            return
        if code == EXIT_RESET:
            cause("hard_reset")
            files, raw = ["boot.py", "main.py"], False
        else:
            cause("soft_reset")
            os.write(1, b"MPY: soft reboot\r\n")
            files = ["boot.py"] if raw else ["boot.py", "main.py"]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4])
