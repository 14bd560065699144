"""A MicroPython board on a serial port, through mpremote's serial transport: what it runs,
which of our files it already has, copying files, starting the firmware and reading its log.

The same code reaches the MicroPython unix port through a socat pty (`resume=True`: no soft
reset, which would end the unix port), which is how the tests drive it.
"""

import ast
import os
import stat
import time

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

__all__ = ["Link", "PortError", "TransportError", "check_port"]

# runs on the board: sha256 of each path, None where there is no such file
_HASHES = """
import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b if n == 512 else b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
print(repr([_h(p) for p in %r]))
del _h
"""
_REPLACE = """
import os
try:
    os.rename(%(tmp)r, %(path)r)
except OSError:  # VfsFat will not rename over a file (config.load adopts a lone .tmp)
    os.remove(%(path)r)
    os.rename(%(tmp)r, %(path)r)
"""


class PortError(Exception):
    """The serial port is missing or unusable: about the cable and the computer, not the board."""


def check_port(port):
    if not port:
        raise PortError("no serial port: give the board's port, e.g. PORT=/dev/ttyUSB0")
    if "://" in port:  # a pyserial URL (rfc2217://, socket://): pyserial checks it
        return
    try:
        mode = os.stat(port).st_mode
    except OSError:
        raise PortError(
            "serial port %s not found: plug the board in (a data cable, not charge-only) and "
            "look for it with: ls /dev/ttyUSB* /dev/ttyACM*" % port
        ) from None
    if not stat.S_ISCHR(mode):
        raise PortError("%s is not a serial port" % port)
    if not os.access(port, os.R_OK | os.W_OK):
        raise PortError(
            "no permission to use %s: add yourself to its group (sudo usermod -aG dialout "
            "$USER), then log in again" % port
        )


class Link:
    def __init__(self, port, resume=False):
        check_port(port)  # raises PortError
        self.port = port
        self.t = SerialTransport(port, baudrate=115200)
        try:
            self.t.enter_raw_repl(soft_reset=not resume)
        except BaseException:
            self.t.close()
            raise
        self._pending = b""

    def info(self):
        """{"platform", "version", "mpy"}: sys.platform, the MicroPython version, and
        sys.implementation._mpy (None on builds that cannot import .mpy)."""
        return self.t.eval(
            "{'platform': __import__('sys').platform, 'version': '.'.join(str(x) for x in "
            "__import__('sys').implementation.version[:3]), 'mpy': getattr(__import__('sys')"
            ".implementation, '_mpy', None)}"
        )

    def hashes(self, paths):
        """{path: sha256 hex or None} for files on the board, in one round trip."""
        out = self.t.exec(_HASHES % (list(paths),))
        return dict(zip(paths, ast.literal_eval(out.decode())))

    def makedirs(self, dirs):
        code = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n"
        self.t.exec(code % (sorted(dirs, key=len),))

    def put(self, path, data):
        # via a temporary file, renamed into place: a cut copy never leaves half a file
        tmp = path + ".tmp"
        self.t.fs_writefile(tmp, data, chunk_size=1024)
        self.t.exec(_REPLACE % {"tmp": tmp, "path": path})

    def remove(self, path):
        self.t.fs_rmfile(path)

    def read(self, path):
        return bytes(self.t.fs_readfile(path))

    def start(self):
        """Run the firmware as at power-on: a soft reset from the friendly REPL runs boot.py
        and main.py (from the raw REPL, boot.py alone: ports/esp32/main.c), as it does after
        the firmware's own soft reset. The friendly REPL's banner, prompt and the line end it
        answers Ctrl-D with (shared/runtime/pyexec.c) are not the firmware's: not shown."""
        self.t.exit_raw_repl()
        self.t.read_until(1, b">>> ", timeout=5)
        self.t.serial.write(b"\x04")
        self.t.read_until(1, b"\r\n", timeout=5)

    def lines(self, seconds):
        """The board's output, one line at a time (without the line end), for up to seconds;
        ends early when the board stops talking (the port closes)."""
        deadline = time.monotonic() + seconds
        s = self.t.serial
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            s.timeout = min(left, 0.5)
            try:
                chunk = s.read(max(1, s.in_waiting))
            except OSError:  # the port went away (the unix port exited)
                if self._pending:
                    yield _text(self._pending)
                    self._pending = b""
                return
            self._pending += chunk
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                yield _text(line)

    def close(self):
        try:
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        finally:
            self.t.close()


def _text(raw):
    # \x04 ends a raw-REPL run: not part of what the firmware printed
    return raw.replace(b"\x04", b"").rstrip(b"\r").decode("utf-8", "replace")
