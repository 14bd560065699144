# Clean stops: `make run` and tools.simdevice end every process they started, on a Ctrl-C typed
# at their terminal (a pty here, whose line discipline signals the foreground process group) and
# on SIGTERM to make, to tools.run or to tools.simdevice, and print no traceback (neither
# Python's nor MicroPython's).
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import threading
import time

import pytest

from tests.e2e.conftest import start_sim, until
from tests.mpenv import ROOT as REPO
from tools.run import sample_config


def _take_terminal():
    # in the child, after setsid(): the pty on stdin becomes its controlling terminal, as a
    # login shell's does
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """argv on a pseudo-terminal of its own, as typed at a shell: it leads the session and is
    the terminal's foreground process group."""

    def __init__(self, argv):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_take_terminal,
        )  # fmt: skip
        os.close(slave)
        self._out = b""
        self._ended = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every process holding the terminal has closed it
                data = b""
            with self._cond:
                self._out += data
                self._ended = not data
                self._cond.notify_all()
            if not data:
                return

    def text(self):
        with self._cond:
            return self._out.decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in self._out.decode(errors="replace"):
                left = deadline - time.monotonic()
                assert not self._ended and left > 0, "no %r in:\n%s" % (text, self.text())
                self._cond.wait(left)

    def ctrl_c(self):
        os.write(self.master, b"\x03")

    def wait_closed(self, timeout=60):
        # the terminal's output ends when the last process that had it open has ended
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "still writing:\n" + self.text()

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.master)


def _stat(pid):
    # (state, parent pid) from /proc/PID/stat; the command name may hold spaces and parens
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(pid):
    """Every live process below pid, whatever its session: {pid: command line}."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = _stat(int(name))[1]
            except (OSError, IndexError):
                pass  # ended meanwhile
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p:
                with open("/proc/%d/cmdline" % child, "rb") as f:
                    found[child] = f.read().replace(b"\0", b" ").decode()
                todo.append(child)
    return found


def ended(pid):
    try:
        return _stat(pid)[0] in "ZX"
    except FileNotFoundError:
        return True


def named(procs, text):
    return [p for p, cmd in procs.items() if text in cmd]


@pytest.fixture
def make_run(tmp_path):
    """`make run` on a terminal, its device reporting: (terminal, {pid: command line})."""
    term = Terminal(["make", "run", "COAP_PORT=0", "HTTP_PORT=0", "DATA=%s" % tmp_path])
    try:
        term.wait_for("I app: reporting to 127.0.0.1:")
        procs = descendants(term.proc.pid)
        assert len(named(procs, "-m tools.run ")) == 1, procs
        assert len(named(procs, "-m tools.simdevice ")) == 1, procs
        assert len(named(procs, "bin/micropython ")) == 1, procs
        yield term, procs
    finally:
        term.close()


def stopped_cleanly(term, procs):
    term.wait_closed()
    until(lambda: all(ended(p) for p in procs), 10, "the processes make run started to end")
    out = term.text()
    assert "Traceback" not in out, out
    return out


def test_ctrl_c_ends_make_run_and_all_it_started(make_run):
    term, procs = make_run
    term.ctrl_c()
    assert term.proc.wait(60) == -signal.SIGINT  # make passes the interrupt on as its own end
    out = stopped_cleanly(term, procs)
    assert "run: stored telemetry {" in out, out
    assert "simdevice: stopped" not in out  # the device was switched off, not stopped


def test_sigterm_to_make_ends_make_run_and_all_it_started(make_run):
    term, procs = make_run
    term.proc.terminate()
    assert term.proc.wait(60) == -signal.SIGTERM
    assert "run: stored telemetry {" in stopped_cleanly(term, procs)


def test_sigterm_to_tools_run_ends_it_and_all_it_started(make_run):
    term, procs = make_run
    (run,) = named(procs, "-m tools.run ")
    os.kill(run, signal.SIGTERM)
    assert term.proc.wait(60) == 2  # make: "run" failed (status 130)
    out = stopped_cleanly(term, procs)
    assert "run: stored telemetry {" in out and "Error 130" in out, out


def test_sigterm_to_the_device_of_make_run_ends_the_run(make_run):
    # the supervisor ends the firmware, tools.run sees its device gone and ends too
    term, procs = make_run
    (supervisor,) = named(procs, "-m tools.simdevice ")
    os.kill(supervisor, signal.SIGTERM)
    assert term.proc.wait(60) == 2  # make: "run" failed (the device's status, 143)
    out = stopped_cleanly(term, procs)
    assert "run: stored telemetry {" in out and "Error 143" in out, out


@pytest.fixture
def simdevice(tmp_path):
    """tools.simdevice with the firmware against tbsim, on a terminal, the device reporting."""
    sim = start_sim(tmp_path / "tbsim")
    dev = sim.create_device("stop-me")
    root = tmp_path / "device"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(sample_config(sim.coap_port, dev["token"])))
    term = Terminal([sys.executable, "-m", "tools.simdevice", str(root)])
    try:
        term.wait_for("I app: reporting to 127.0.0.1:")
        procs = descendants(term.proc.pid)
        assert len(named(procs, "bin/micropython ")) == 1, procs
        yield term, procs
    finally:
        term.close()
        sim.stop()


@pytest.mark.parametrize("how, status", [("ctrl_c", 130), ("sigterm", 143)])
def test_simdevice_ends_the_firmware_on_ctrl_c_and_sigterm(simdevice, how, status):
    term, procs = simdevice
    if how == "ctrl_c":  # the firmware gets SIGINT as well: it is in the foreground group
        term.ctrl_c()
    else:
        term.proc.terminate()
    assert term.proc.wait(30) == status
    stopped_cleanly(term, procs)


def test_an_interrupt_to_the_firmware_alone_ends_it_quietly(simdevice):
    # SIGINT to the firmware's process only (not the supervisor): MicroPython's
    # KeyboardInterrupt ends it without a traceback, and the supervisor says so and ends
    term, procs = simdevice
    (firmware,) = named(procs, "bin/micropython ")
    os.kill(firmware, signal.SIGINT)
    assert term.proc.wait(30) == 130
    assert "simdevice: interrupted (status 130)" in stopped_cleanly(term, procs)
