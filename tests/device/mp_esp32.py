# The firmware on what an ESP32 running official MicroPython gives it, where that differs from
# the unix port (the stand-ins in fakes.py cite the MicroPython source they follow): each case
# is a configuration, a datagram or a clock the board can meet, and what the device must do.
import asyncio
import json
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import fakes  # noqa: E402

from firmware import checked, start  # noqa: E402
from firmware import log as logs  # noqa: E402
from firmware.board import sim  # noqa: E402

_dir = fakes.scratch_dir("mp_esp32")

CONFIG = {
    "server": {"host": "127.0.0.1", "port": 5683},
    "token": "T0K3N",
    "wifi": {"ssid": "", "password": ""},
    "led": {"pin": 2},
}


def board(**server):
    # a simulated board whose config.json is CONFIG with these server settings, checked and
    # kept (a boot that checks it restarts)
    fakes.empty(_dir)
    cfg = json.loads(json.dumps(CONFIG))
    cfg["server"].update(server)
    with open(_dir + "/config.json", "w") as f:
        json.dump(cfg, f)
    b = sim.Board(_dir)
    checked.keep(b, start.settings(b)[0])
    return b


class Lines:
    # what the firmware logs, captured: logs print through firmware.log's own print
    def __enter__(self):
        self.lines = []
        logs.print = lambda line, end: self.lines.append(line.rstrip("\n"))
        return self

    def __exit__(self, *exc):
        del logs.print

    def has(self, *words):
        return any(all(w in line for w in words) for line in self.lines)


def restore(name, module):
    # put back what sys.modules had under name (nothing, if the module was not loaded)
    if module is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module


def pins(b):
    try:
        with open(b.path("pins.json")) as f:
            return json.load(f)
    except OSError:
        return {}


def test_coaps_on_a_micropython_without_dtls_is_refused_at_boot_with_the_led_signal():
    b = board(coaps=True, port=5684, ca="ca.der")
    with open(b.path("ca.der"), "wb") as f:
        f.write(b"\x30\x03\x02\x01\x00")
    real = sys.modules.get("ssl")
    sys.modules["ssl"] = fakes.ssl_before_dtls()
    try:
        with Lines() as log:
            assert asyncio.run(start.boot(b)) is None
    finally:
        restore("ssl", real)
    assert log.has("server.coaps", "DTLS", "1.25"), log.lines
    assert pins(b) == {"2": 1}


def esp32_socket(hosts):
    # the ESP32's socket module for the firmware's next import of it -> (fake, undo)
    real = sys.modules.get("socket")
    fake = sys.modules["socket"] = fakes.Esp32Socket(hosts)

    def undo():
        restore("socket", real)

    return fake, undo


def test_a_server_with_only_an_ipv6_address_is_refused_at_boot_with_the_led_signal():
    b = board(host="v6only.example")
    fake, undo = esp32_socket({"v6only.example": ["2001:db8::1"]})
    try:
        with Lines() as log:
            assert asyncio.run(start.boot(b)) is None
    finally:
        undo()
    assert log.has("v6only.example", "IPv4"), log.lines
    assert pins(b) == {"2": 1}


def test_the_ipv4_address_of_a_dual_stack_server_is_the_one_used():
    from coap.client import udp_socket

    fake, undo = esp32_socket({"dual.example": ["2001:db8::1", "192.0.2.7"]})
    try:
        s = udp_socket("dual.example", 5683)
    finally:
        undo()
    assert (s.af, s.peer, s.blocking) == (fake.AF_INET, ("192.0.2.7", 5683), False)


def dtls_session():
    # a coaps socket whose session is up, on an ESP32 UDP socket -> (DtlsSocket, udp)
    from coap.dtls import DtlsSocket

    udp = fakes.Esp32UdpSocket()
    udp.connect(("192.0.2.7", 5684))
    s = DtlsSocket(udp, fakes.DtlsContext(), "192.0.2.7")
    s.write(b"\x40\x01\x00\x01")
    assert s.up
    return s, udp


def test_dtls_reads_allocate_nothing_and_records_read_together_come_out_one_by_one():
    s, udp = dtls_session()
    for i in range(3):
        udp.deliver(fakes.record(b"\x60\x00\x00" + bytes([i])))
    udp.free = 1152  # room for a plaintext only: the records go straight into mbedTLS's buffer
    got = []
    while s.pending or not got:  # what coap.client's reader does: no wait while records wait
        got.append(s.recv(1152))
    assert got == [b"\x60\x00\x00\x00", b"\x60\x00\x00\x01", b"\x60\x00\x00\x02"]
    assert s.recv(1152) is None and s.up and udp.asked == []


def test_records_held_when_the_plaintext_cannot_be_allocated_come_out_later():
    s, udp = dtls_session()
    for i in range(3):
        udp.deliver(fakes.record(b"\x60\x00\x00" + bytes([i])))
    assert s.recv(1152) == b"\x60\x00\x00\x00" and s.pending == 2
    udp.free = 1000  # ssl's recv cannot allocate its 1152 bytes: coap.client waits and reads on
    try:
        s.recv(1152)
        raise AssertionError("no MemoryError")
    except MemoryError:
        pass
    assert s.pending == 2  # neither record is lost to the count
    udp.free = None
    assert [s.recv(1152), s.recv(1152)] == [b"\x60\x00\x00\x01", b"\x60\x00\x00\x02"]
    assert s.pending == 0 and s.up


async def test_an_empty_datagram_neither_deafens_nor_spins_the_client():
    from coap.client import connect
    from coap.codec import ACK, CHANGED, POST
    from coap.message import Message

    clock = fakes.install()

    def peer(sock, data):  # the server answers every request in its ACK
        m = Message.decode(data)
        if m.type != ACK:
            sock.deliver(Message(ACK, CHANGED, m.mid, m.token, [], b"").encode(), 10)

    fake, undo = esp32_socket({"server.example": ["192.0.2.7"]})
    fake.clock, fake.peer = clock, peer
    try:
        lines = []
        client = connect("server.example", 5683, log=lambda *a: lines.append(a))
        client.start()
        fake.made[0].deliver(b"")  # from the server's address: the socket is closed now
        await asyncio.sleep_ms(5)
        for _ in range(3):
            ex = await client.request(POST, payload=b"{}", timeout=20000)
            assert ex.code == CHANGED
    finally:
        undo()
        client.close()
    assert fake.made[0].closed_reads <= 1 and len(fake.made) == 2, lines


def test_the_handshake_code_is_in_ram_only_while_no_session_is_up():
    import coap

    def loaded():
        return "coap.handshake" in sys.modules or "handshake" in coap.__dict__

    log = []
    s, udp = dtls_session()
    s.log = lambda *a: log.append(" ".join(str(x) for x in a))
    assert s.up and not loaded()
    s._ss.broken = True  # mbedTLS fails the session: it is dropped, saying why
    assert s.recv(1152) is None and not s.up
    assert log == ["DTLS session lost: -27648"] and loaded()
    assert s.write(b"\x40\x01\x00\x02") == 4  # a new handshake, done at once here
    assert s.up and not loaded() and s.stats["handshakes"] == 2


def test_a_coaps_socket_whose_udp_socket_is_closed_says_so_as_a_udp_socket_does():
    s, udp = dtls_session()
    udp.deliver(b"")
    assert s.recv(1152) == b""  # coap.client then opens a new one (the case above)
    assert udp.closed_reads == 0  # mbedTLS was not handed the end of the connection


class ClockBoard(sim.Board):
    # the ESP32's clock: 2000-01-01 (ports/esp32/main.c) until NTP answers, at attempt `at`
    def __init__(self, root, at):
        super().__init__(root)
        self.at = at
        self.tries = 0

    async def sync_time(self):
        self.tries += 1

    def time_set(self):
        return self.tries >= self.at


class AnySsl:
    # an ssl module that takes any certificate: what is checked here is when the firmware
    # reaches for it, not mbedTLS
    PROTOCOL_DTLS_CLIENT, CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE = 20, 2, 1, 0

    class SSLContext:
        def __init__(self, proto):
            pass

        def load_verify_locations(self, cadata=None):
            pass


def clock_board(at, **server):
    b = board(**server)
    return ClockBoard(b.root, at)


async def test_coaps_certificate_checks_wait_for_ntp_retried_with_backoff():
    clock = fakes.install()
    b = clock_board(4, coaps=True, port=5684, ca="ca.der")
    with open(b.path("ca.der"), "wb") as f:
        f.write(b"\x30\x03\x02\x01\x00")
    real = sys.modules.get("ssl")
    sys.modules["ssl"] = AnySsl
    try:
        with Lines() as log:
            ready = await start.boot(b)
    finally:
        restore("ssl", real)
    ready[0].close()
    assert b.time_set() and b.tries == 4  # tries at 0 s, then after 2, 4 and 8 s
    assert 14000 <= clock.now() < 14100, clock.now()
    assert log.has("certificate", "clock"), log.lines


async def test_without_certificates_ntp_goes_on_in_the_background_until_the_clock_is_set():
    clock = fakes.install()
    b = clock_board(3)
    ready = await start.boot(b)
    ready[0].close()
    assert not b.time_set() and clock.now() < 100  # the device runs, telemetry unstamped
    await asyncio.sleep_ms(7000)
    assert b.time_set() and b.tries == 3


def test_config_pins_are_checked_for_the_chip_the_board_reports():
    b = board()
    with open(b.path("board.json"), "w") as f:
        json.dump({"chip": "esp32c3"}, f)
    with open(b.path("config.json")) as f:
        cfg = json.load(f)
    cfg["gpio"] = [{"name": "pump", "pin": 26, "direction": "out"}]  # fine on a classic ESP32
    with open(b.path("config.json"), "w") as f:
        json.dump(cfg, f)
    b = sim.Board(b.root)
    assert b.chip == "esp32c3"
    with Lines() as log:
        assert asyncio.run(start.boot(b)) is None
    assert log.has("gpio[0].pin: 26 is not a GPIO on ESP32-C3"), log.lines
