# Malformed and hostile datagrams at the running firmware (main.py on the unix port, under
# tools.simdevice) from the server's own address: a UDP proxy between the device and tbsim plays
# the server, forwards the real traffic and injects hypothesis' datagrams, some on the device's
# live observation tokens. Afterwards the device still runs, answers RPCs and sends telemetry.
import json
import select
import socket
import threading
import time

from fuzzenv import COUNTS, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_device_fuzz import ATTR_TOKEN, RPC_TOKEN, datagrams, mutate

from coap import codec
from coap.message import Message
from tests.e2e.conftest import Firmware, make_config, rows, start_sim, until, wait_rows

KNOWN = [  # (relation's token, payload) that once crashed or confused the device
    (ATTR_TOKEN, b"null"),
    (ATTR_TOKEN, b'{"telemetry_interval": 100000000000000000000000000000000}'),
    (RPC_TOKEN, b'{"id": 1e400, "method": "getGpioStatus"}'),
]


class Proxy:
    """device <-> proxy <-> tbsim; inject() sends as the server. Learns the device's address
    and its observation tokens from the traffic."""

    def __init__(self, server_port):
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", server_port))
        self.device = None
        self.tokens = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _learn(self, data):
        try:
            m = Message.decode(data)
        except codec.MessageError:
            return
        path = [bytes(v) for n, v in m.options if n == codec.URI_PATH]
        if m.code == codec.GET and m.uint(codec.OBSERVE) == 0 and path:
            self.tokens[path[-1].decode()] = bytes(m.token)

    def _run(self):
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for s in ready:
                if s is self.front:
                    data, self.device = self.front.recvfrom(2048)
                    self._learn(data)
                    self.back.send(data)
                else:
                    data = self.back.recv(2048)
                    if self.device:
                        self.front.sendto(data, self.device)

    def inject(self, data):
        data = bytearray(data)
        if len(data) >= 8:
            tok = bytes(data[4 : 4 + (data[0] & 15)])
            for magic, kind in ((RPC_TOKEN, "rpc"), (ATTR_TOKEN, "attributes")):
                if tok == magic and kind in self.tokens and len(self.tokens[kind]) == 4:
                    data[4:8] = self.tokens[kind]
        # a reboot is legitimate behaviour, but this test wants the same process throughout
        self.front.sendto(bytes(data).replace(b"reboot", b"rebooX"), self.device)

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.front.close()
        self.back.close()


def test_junk_datagrams_do_not_stop_the_firmware(tmp_path):
    sim = start_sim(tmp_path / "tbsim")
    proxy = Proxy(sim.coap_port)
    fw = None
    try:
        dev = sim.create_device("junk-device", token="JUNK_DEVICE_TOKEN_001")
        did = dev["id"]
        root = tmp_path / "device"
        root.mkdir()
        cfg = make_config(sim, token="JUNK_DEVICE_TOKEN_001")
        cfg["server"]["port"] = proxy.port
        (root / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(root)
        wait_rows(sim, did, 2)
        started = fw.mark()  # after the first boot's restart (it checks config.json)
        until(lambda: {"rpc", "attributes"} <= set(proxy.tokens), what="observations")
        sent = []
        junk = st.one_of(datagrams(), mutate(datagrams()), st.binary(max_size=40))

        @settings(
            max_examples=examples(25),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(junk, min_size=10, max_size=40))
        def barrage(batch):
            for d in batch:
                proxy.inject(d)
            sent.extend(batch)

        barrage()
        COUNTS["datagrams at the firmware"] += len(sent)
        assert len(sent) > 50
        # and cases found before (regressions), which also show that junk reaches the parsers
        # behind the observations, not only the codec
        until(lambda: {"rpc", "attributes"} <= set(proxy.tokens), what="observations")
        at = fw.mark()
        want = [
            "bad rpc notification dropped",
            "bad attribute notification dropped",
            "shared attribute telemetry_interval: interval must be",
        ]
        # junk may have ended an observation: the device registers again after its backoff
        # and the proxy learns the new token, so the cases go again (new MIDs) until handled
        deadline = time.monotonic() + 90
        for n in range(1000):
            for i, (token, payload) in enumerate(KNOWN):
                mid = n * len(KNOWN) + i
                opts = [(codec.OBSERVE, 100000 + mid)]  # fresher than anything tbsim sent
                msg = Message(codec.CON, codec.CONTENT, mid, token, opts, payload)
                proxy.inject(msg.encode())
            try:
                for line in want:
                    fw.wait_line(line, 3, at)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        # afterwards: still the same process, telemetry goes on, RPCs are answered. Junk may
        # have set a valid telemetry_interval of up to a day, so the server sets it back.
        sim.set_shared(did, {"telemetry_interval": 1})
        n = len(rows(sim, did))
        wait_rows(sim, did, n + 3, timeout=40)
        reply = until(
            lambda: _rpc(sim, did, "getGpio", {"pin": 26}), timeout=40, what="an RPC reply"
        )
        assert set(reply) == {"pin", "value"} and reply["pin"] == 26
        assert sim.rpc(did, "getGpio", {"pin": 4}) == {
            "error": "pin 4 is not in the GPIO allowlist"
        }
        assert fw.running()
        assert not fw.grep("Traceback") and not fw.grep("simdevice:", started), fw.tail()
    finally:
        if fw:
            fw.stop()
        proxy.close()
        sim.stop()


def _rpc(sim, did, method, params):
    from tools.tbsim import RpcTimeout

    try:
        return sim.rpc(did, method, params, timeout=5)
    except RpcTimeout:
        return None
