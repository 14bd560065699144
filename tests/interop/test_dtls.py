# coaps: the MicroPython client (lib/coap/dtls.py on the unix port's mbedTLS) against libcoap's
# coap-server-openssl with DTLS 1.2: certificates made at test time (tests/pki.py), mutual
# X.509 authentication, pinning, PSK, refusals with their reasons, the CLI, and new sessions
# after the server forgot the old one (with an alert, or silently behind a relay).
import json
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dtls_server import SERVER, DtlsServer, stop  # noqa: E402
from mpenv import MICROPYTHON, ROOT  # noqa: E402
from pki import Pki  # noqa: E402

PSK_ID, PSK_KEY = "CoAP", "secretPSK-0123"

pytestmark = pytest.mark.skipif(not SERVER, reason="libcoap3-bin (coap-server-openssl) missing")

# argv[1]: a JSON file with port, path, and ca/pin/cert/key file paths or psk [identity, key];
# optional: explicit (handshake first), hostname, n (requests), pause (wait for a line on stdin
# after the first request), ack (ACK_TIMEOUT ms), dead_ms, timeout (ms), block (download size),
# burst (that many requests at once, their answers left to queue up in the socket, n times).
# Each log line is printed as it comes, so that a run that times out shows how far it got.
SCRIPT = """
import asyncio, json, sys, time
from coap import dtls
from coap.block import download
from coap.dtlscontext import context
from coap.codec import GET
from coap.handshake import handshake
from coap.uri import uri_options


def rd(path):
    with open(path, "rb") as f:
        return f.read()


async def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    files = {k: rd(a[k]) for k in ("ca", "pin", "cert", "key") if a.get(k)}
    psk = tuple(x.encode() for x in a["psk"]) if a.get("psk") else None
    log = []

    def said(*x):
        log.append(" ".join(str(y) for y in x))
        print("log:", log[-1])

    c = dtls.connect(
        "127.0.0.1", a["port"], context(psk=psk, **files), a.get("hostname"), said,
        ack_timeout=a.get("ack", 2000),
    )
    if "dead_ms" in a:
        c.sock.dead_ms = a["dead_ms"]
    timeout = a.get("timeout", 5000)
    out = {"log": log, "got": []}
    try:
        if a.get("explicit"):
            await handshake(c.sock, timeout)
        c.start()
        ex = c.exchange()
        for i in range(a.get("n", 1)):
            if a.get("burst"):
                await burst(c, a["path"], a["burst"], timeout, out["got"])
            elif a.get("block"):
                body = bytearray()
                await download(c, uri_options(a["path"]), body.extend, a["block"])
                out["got"].append([69, len(body)])
            else:
                await ex.request(GET, uri_options(a["path"]), timeout=timeout)
                out["got"].append([ex.code, bytes(ex.payload()).decode()])
            if a.get("pause") and i == 0:
                print("PAUSED")
                sys.stdin.readline()
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    out["dtls"] = c.sock.stats
    out["up"] = c.sock.up
    out["stats"] = c.stats
    c.close()
    print(json.dumps(out))


async def burst(c, path, k, timeout, got):
    async def get(ex):
        await ex.request(GET, uri_options(path), timeout=timeout)
        return [ex.code, bytes(ex.payload()).decode()]

    tasks = [asyncio.create_task(get(c.exchange())) for _ in range(k)]
    await asyncio.sleep_ms(0)  # the requests go out; this task runs again before the reader
    time.sleep_ms(300)  # the answers arrive meanwhile, to be read at once
    got.extend(await asyncio.gather(*tasks))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki):
    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = DtlsServer(
                {
                    "mutual": ["-c", pki.server.pem, "-j", pki.server.key_pem, "-C", pki.ca.pem],
                    "expired": ["-c", pki.expired_server.pem, "-j", pki.expired_server.key_pem],
                    "psk": ["-k", PSK_KEY, "-h", PSK_ID],
                }[kind]
            )
        return made[kind]

    yield get
    for s in made.values():
        stop(s.proc)


@pytest.fixture
def mutual(servers):
    return servers("mutual")


class Run:
    def __init__(self, tmp_path):
        self.path = tmp_path / "dtls_script.py"
        self.path.write_text(textwrap.dedent(SCRIPT))
        self.n = 0
        self.env = {"MICROPYPATH": "%s:.frozen" % (ROOT / "lib"), "PATH": "/usr/bin:/bin"}

    def start(self, **a):
        # the arguments go in a file: an argv item of 256 characters or more crashes this
        # unix port build ("FATAL: uncaught NLR")
        self.n += 1
        args = self.path.with_name("args%d.json" % self.n)
        args.write_text(json.dumps(a, default=str))
        return subprocess.Popen(
            [str(MICROPYTHON), str(self.path), str(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )

    def paused(self, proc):
        # the script's log lines until it says it paused
        for line in proc.stdout:
            if line.strip() == "PAUSED":
                return
            assert line.startswith("log: "), line
        pytest.fail("the script ended before it paused")

    def finish(self, proc, timeout=20):
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail("micropython timed out:\n" + out)
        assert proc.returncode == 0, out
        return json.loads(out.strip().splitlines()[-1])

    def __call__(self, **a):
        return self.finish(self.start(**a))


@pytest.fixture
def run(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("MicroPython unix port not installed in .venv")
    return Run(tmp_path)


def mutual_auth(pki, port, **a):
    return dict(port=port, ca=pki.ca.der, cert=pki.client.der, key=pki.client.key_der, **a)


# --- certificates


def test_mutual_x509_auth_explicit_handshake(run, pki, mutual):
    r = run(path="time", explicit=True, **mutual_auth(pki, mutual.port))
    assert "error" not in r, r
    assert r["got"][0][0] == 69 and len(r["got"][0][1]) > 5  # 2.05 with the server's clock
    assert r["dtls"] == {"handshakes": 1, "failed": 0, "dropped": 0}
    assert r["log"] == ["DTLS session up: TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"]


def test_first_request_starts_the_handshake_and_goes_out_when_it_is_done(run, pki, mutual):
    # no explicit handshake: the request is kept while the handshake runs, then sent at once,
    # without waiting for a CoAP retransmission
    r = run(path="time", n=3, **mutual_auth(pki, mutual.port))
    assert "error" not in r, r
    assert [g[0] for g in r["got"]] == [69, 69, 69]
    assert r["dtls"]["handshakes"] == 1 and r["stats"]["retransmit"] == 0


def test_blockwise_over_dtls(run, pki, mutual):
    r = run(path="example_data", block=256, **mutual_auth(pki, mutual.port))
    assert r["got"] == [[69, 1500]], r


def test_answers_read_together_are_each_handed_out_at_once(run, pki, mutual):
    # three answers wait in the socket and are read into mbedTLS in one go (three records):
    # each reaches its request without waiting for another datagram, so none is asked again
    r = run(path="time", burst=3, n=2, explicit=True, **mutual_auth(pki, mutual.port))
    assert "error" not in r, r
    assert [g[0] for g in r["got"]] == [69] * 6, r
    assert r["stats"]["retransmit"] == 0, r


def test_pem_files_work_as_well_as_der(run, pki, mutual):
    r = run(
        path="time", port=mutual.port, ca=pki.ca.pem, cert=pki.client.pem, key=pki.client.key_pem
    )
    assert r["got"][0][0] == 69, r


def test_certificate_name_may_be_an_ip_address(run, pki, mutual):
    r = run(path="time", hostname="127.0.0.1", **mutual_auth(pki, mutual.port))
    assert r["got"][0][0] == 69, r


def test_pinned_server_certificate(run, pki, mutual):
    a = dict(port=mutual.port, cert=pki.client.der, key=pki.client.key_der, explicit=True)
    r = run(path="time", pin=pki.server.der, **a)
    assert r["got"][0][0] == 69, r
    r = run(path="time", pin=pki.selfsigned.der, **a)
    assert r["error"] == "DtlsError: the server's certificate is not the pinned one", r
    assert r["got"] == [] and r["up"] is False


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"ca": "other_ca"}, "The certificate is not correctly signed by the trusted CA"),
        ({"hostname": "example.com"}, "The certificate Common Name (CN) does not match"),
        ({"cert": None, "key": None}, "the server refused the handshake (fatal alert"),
    ],
    ids=["wrong CA", "wrong host name", "no client certificate"],
)
def test_refused(run, pki, mutual, change, reason):
    a = mutual_auth(pki, mutual.port, explicit=True, path="time")
    for k, v in change.items():
        a[k] = getattr(pki, v).der if k == "ca" else v
    r = run(**a)
    assert r["error"].startswith("DtlsError: " + reason), r
    assert r["got"] == [] and r["dtls"]["failed"] == 1
    assert r["log"][-1].startswith("DTLS handshake failed: " + reason)


def test_expired_server_certificate_refused(run, pki, servers):
    r = run(path="time", port=servers("expired").port, ca=pki.ca.der, explicit=True)
    assert r["error"] == "DtlsError: The certificate validity has expired", r


def test_failed_handshake_is_retried_after_a_backoff_not_at_every_write(run, pki, mutual):
    # wrong CA, no explicit handshake: the CoAP request retransmits (ACK_TIMEOUT 300 ms) and
    # gives up; only the first write and the one after the 2 s backoff start a handshake
    a = mutual_auth(pki, mutual.port, path="time", ack=300, timeout=4000)
    a["ca"] = pki.other_ca.der
    r = run(**a)
    assert r["error"].startswith("CoapTimeout"), r
    assert r["dtls"]["handshakes"] == 2 and r["dtls"]["failed"] == 2
    assert r["dtls"]["dropped"] >= 2  # the writes in between
    assert r["got"] == []


# --- PSK


def test_psk(run, servers):
    r = run(path="time", port=servers("psk").port, psk=[PSK_ID, PSK_KEY], explicit=True)
    assert r["got"] and r["got"][0][0] == 69, json.dumps(r)
    assert r["log"] == ["DTLS session up: TLS-PSK-WITH-AES-256-GCM-SHA384"]


def test_wrong_psk_gets_no_session(run, servers):
    # libcoap drops the handshake silently: a timeout, and the key appears nowhere
    a = dict(path="time", port=servers("psk").port, explicit=True, timeout=1500)
    r = run(psk=[PSK_ID, "not-the-key"], **a)
    assert r["error"] == "DtlsError: no DTLS session within 1500 ms", r
    assert "not-the-key" not in json.dumps(r)


# --- the CLI


def test_cli_coaps(mp, pki, mutual, servers):
    rc, out = mp.cli(
        "-R", pki.ca.pem, "-c", pki.client.der, "-j", pki.client.key_pem, mutual_uri(mutual)
    )
    assert rc == 0 and out.splitlines()[0] == "2.05", out
    rc, out = mp.cli("-u", PSK_ID, "-k", PSK_KEY, mutual_uri(servers("psk")))
    assert rc == 0 and out.splitlines()[0] == "2.05", out


def mutual_uri(server):
    return "coaps://127.0.0.1:%d/time" % server.port


def test_cli_coaps_refusals(mp, pki, mutual, servers):
    rc, out = mp.cli(
        "-R", pki.other_ca.der, "-c", pki.client.der, "-j", pki.client.key_der, mutual_uri(mutual)
    )
    assert (rc, out) == (1, "error: The certificate is not correctly signed by the trusted CA\n")
    rc, out = mp.cli("-u", PSK_ID, "-k", "wrong-secret", "-t", "1000", mutual_uri(servers("psk")))
    assert (rc, out) == (1, "error: no DTLS session within 1000 ms\n")
    rc, out = mp.cli(mutual_uri(mutual))
    assert (rc, out) == (2, "error: coaps needs -R ca-file (the server's CA) or a PSK (-u, -k)\n")
    rc, out = mp.cli("-R", "missing.der", mutual_uri(mutual))
    assert rc == 2 and out.startswith("error: -R missing.der: cannot read it"), out
    rc, out = mp.cli("-R", pki.ca.der, "coap://127.0.0.1:1/time")
    assert (rc, out) == (2, "error: ca need a coaps:// URI\n")


# --- the server forgets the session


def test_server_restart_ends_the_session_and_a_new_handshake_follows(run, pki, servers):
    # libcoap answers a record of a session it does not know with an alert: the session ends
    # at once and the next request (here: the first retransmission) starts a full handshake
    server = servers("mutual")
    proc = run.start(path="time", n=2, pause=True, **mutual_auth(pki, server.port))
    run.paused(proc)
    server.restart()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    r = run.finish(proc)
    assert "error" not in r, r
    assert [g[0] for g in r["got"]] == [69, 69]
    assert r["dtls"]["handshakes"] == 2
    assert "DTLS session ended by the server" in r["log"]


class Relay:
    """UDP relay 127.0.0.1:port -> upstream with per-direction drop rules:
    drop(direction, datagram, index) -> True to drop; every datagram is recorded."""

    def __init__(self, upstream, drop):
        self.upstream = upstream
        self.drop = drop
        self.seen = {"up": [], "down": []}
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", upstream))
        self.client = None
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import select

        while self.running:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for s in ready:
                try:
                    data, addr = s.recvfrom(4096)
                except OSError:
                    continue
                way = "up" if s is self.front else "down"
                if way == "up":
                    self.client = addr
                self.seen[way].append(data)
                if self.drop(way, data, len(self.seen[way]) - 1):
                    continue
                if way == "up":
                    self.back.send(data)
                elif self.client:
                    self.front.sendto(data, self.client)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.front.close()
        self.back.close()


@pytest.fixture
def relay():
    made = []

    def make(upstream, drop):
        made.append(Relay(upstream, drop))
        return made[-1]

    yield make
    for r in made:
        r.close()


def client_hellos(datagrams):
    # DTLS records: type 22 (handshake), epoch 0, handshake type 1 (ClientHello) at byte 13
    return sum(1 for d in datagrams if len(d) > 13 and d[0] == 22 and d[13] == 1)


def test_handshake_flights_are_retransmitted(run, pki, mutual, relay):
    # the server's first two flights are lost: the client sends its ClientHello again (when
    # mbedTLS's timer has run out and the handshake loop calls it) and the session comes up
    r0 = relay(mutual.port, lambda way, d, i: way == "down" and i < 2)
    r = run(path="time", explicit=True, **mutual_auth(pki, r0.port))
    assert r["got"][0][0] == 69, r
    assert client_hellos(r0.seen["up"]) >= 4  # without loss: 2 (the second with the cookie)
    assert r["dtls"]["handshakes"] == 1


def test_silently_forgotten_session_gets_a_new_handshake(run, pki, relay):
    # a server that drops records of sessions it does not know (as a restarted Californium
    # does): after a CON unanswered for dead_ms the client starts a new handshake
    server = DtlsServer(["-c", pki.server.pem, "-j", pki.server.key_pem, "-C", pki.ca.pem])
    try:
        alerts = lambda way, d, i: way == "down" and d[0] == 21  # noqa: E731
        r0 = relay(server.port, alerts)
        a = mutual_auth(pki, r0.port, path="time", n=2, pause=True, ack=300, dead_ms=1000)
        proc = run.start(timeout=8000, **a)
        run.paused(proc)
        server.restart()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        r = run.finish(proc)
    finally:
        stop(server.proc)
    assert "error" not in r, r
    assert [g[0] for g in r["got"]] == [69, 69]
    assert r["dtls"]["handshakes"] == 2
    assert "DTLS: no answer for 1 s, new handshake" in r["log"]
    assert r["stats"]["retransmit"] >= 2


def test_module_is_not_loaded_for_plain_coap(mp):
    # plain CoAP firmware pays nothing for DTLS
    p = mp.run(["-c", "import sys; from coap import client; print('coap.dtls' in sys.modules)"])
    assert p.stdout.decode().strip() == "False"
