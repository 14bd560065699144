# Interop fixtures: real CoAP peers (libcoap's coap-server-notls, an aiocoap server in a
# subprocess) on free 127.0.0.1 ports, and helpers that run the MicroPython client (the CLI
# `micropython -m coap` or a script written to tmp_path) with a timeout.
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.procs import stop, wait_bound

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
LIBCOAP_SERVER = shutil.which("coap-server-notls")
LIBCOAP_CLIENT = shutil.which("coap-client-notls")
READY_TIMEOUT = 5.0


def free_udp_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def coap_ping(port, host="127.0.0.1", family=socket.AF_INET, deadline=READY_TIMEOUT):
    # Wait until a CoAP server answers a CoAP ping (empty CON) with a RST of the same MID.
    end = time.monotonic() + deadline
    mid = 0x1234
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        while time.monotonic() < end:
            mid += 1
            ping = bytes([0x40, 0, mid >> 8, mid & 0xFF])
            try:
                s.sendto(ping, (host, port))
                data = s.recv(64)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if len(data) >= 4 and data[0] >> 4 == 0x7 and data[2:4] == ping[2:4]:  # RST
                return
    raise TimeoutError("no CoAP server answered on %s:%d" % (host, port))


class Libcoap:
    # A running coap-server-notls; port and host for URIs.
    def __init__(self, host, port, proc):
        self.host = host
        self.port = port
        self.proc = proc

    def uri(self, path=""):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "coap://%s:%d/%s" % (h, self.port, path)


@pytest.fixture(scope="session")
def libcoap_factory():
    if not LIBCOAP_SERVER or not LIBCOAP_CLIENT:
        pytest.skip("libcoap3-bin (coap-server-notls, coap-client-notls) is not installed")
    procs = []

    def start(*args, host="127.0.0.1", probe=True):
        # probe=False: wait for the bound socket only, so no datagram is spent (for -l N)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        port = free_udp_port(family, host)
        cmd = [LIBCOAP_SERVER, "-A", host, "-p", str(port)] + list(args)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        if probe:
            coap_ping(port, host, family)
        else:
            wait_bound(port, proc)
        return Libcoap(host, port, proc)

    yield start
    for p in procs:
        stop(p)


def observe_once(port, path="time"):
    # Register a CPython observer of /path and deregister it at once. libcoap's coap-server
    # sends the first observer of /time an extra notification right behind the response
    # (the resource starts out dirty); later observers get the response alone. Two datagrams
    # back to back hit the client's readinto bug (test_two_datagrams_waiting_at_once), which
    # would make the observe tests flaky, so the shared server gets this first observer.
    sys.path.insert(0, str(ROOT / "lib"))
    try:
        from coap.codec import ACK, CON, EMPTY, GET, OBSERVE, URI_PATH
        from coap.message import Message
    finally:
        sys.path.pop(0)
    token = b"warm"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(0.2)
        for mid, obs in ((0x2001, 0), (0x2002, 1)):
            opts = [(OBSERVE, obs), (URI_PATH, path)]
            s.send(Message(CON, GET, mid, token, opts).encode())
            while True:
                try:
                    m = Message.decode(s.recv(2048))
                except socket.timeout:
                    break
                if m.type == CON:
                    s.send(Message(ACK, EMPTY, m.mid).encode())


@pytest.fixture(scope="session")
def libcoap(libcoap_factory):
    # shared server; -d allows PUT/POST to create dynamic resources (tests use unique names)
    server = libcoap_factory("-d", "30")
    observe_once(server.port)
    return server


class Aiocoap:
    def __init__(self, port, big):
        self.host = "127.0.0.1"
        self.port = port
        self.big = big

    def uri(self, path=""):
        return "coap://%s:%d/%s" % (self.host, self.port, path)


@pytest.fixture(scope="session")
def aiocoap_server(tmp_path_factory):
    pytest.importorskip("aiocoap")
    big = os.urandom(100 * 1024)
    big_file = tmp_path_factory.mktemp("aiocoap") / "big.bin"
    big_file.write_bytes(big)
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "aiocoap_server.py"), str(port), str(big_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            stop(proc)
            raise RuntimeError("aiocoap server did not start: %r %s" % (line, proc.stdout.read()))
        yield Aiocoap(port, big)
    finally:
        stop(proc)


# appended to every script: its results line, and the run
SCRIPT_TAIL = """


def report(c, out):
    out["stats"] = c.stats
    c.close()
    print(json.dumps(out))


asyncio.run(main())
"""


class MicroPython:
    # Runs the client under the MicroPython unix port; stdout carries tracebacks too.
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.env = dict(os.environ)
        self.env["MICROPYPATH"] = "%s:.frozen" % (ROOT / "lib")
        self.n = 0

    def run(self, args, timeout=15):
        try:
            return subprocess.run(
                [str(MICROPYTHON)] + [str(a) for a in args],
                capture_output=True,
                timeout=timeout,
                env=self.env,
                cwd=str(self.tmp_path),
            )
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            pytest.fail("micropython %s timed out after %ss; output:\n%s" % (args, timeout, out))

    def cli(self, *args, timeout=15):
        # `micropython -m coap ARGS` -> (returncode, stdout text)
        p = self.run(["-m", "coap"] + list(args), timeout)
        return p.returncode, p.stdout.decode(errors="replace")

    def script(self, source, *args, timeout=15):
        # Run a MicroPython script defining `async def main()`; it must print one JSON object
        # as its last line (report(client, out) does that).
        self.n += 1
        path = self.tmp_path / ("mp_script_%d.py" % self.n)
        path.write_text(textwrap.dedent(source) + SCRIPT_TAIL)
        p = self.run([path] + list(args), timeout)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0, "script failed (rc=%d):\n%s" % (p.returncode, out)
        lines = out.strip().splitlines()
        assert lines, "script printed nothing"
        return json.loads(lines[-1])


@pytest.fixture
def mp(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("MicroPython unix port not installed in .venv")
    return MicroPython(tmp_path)


def _coap_client(*args, timeout=15):
    # libcoap's coap-client-notls -> its output; it exits 0 even on failure, so check output
    p = subprocess.run(
        [LIBCOAP_CLIENT] + [str(a) for a in args], capture_output=True, timeout=timeout
    )
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


@pytest.fixture
def coap_client():
    return _coap_client
