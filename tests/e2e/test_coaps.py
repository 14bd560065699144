# The firmware over coaps: an X.509 device (client certificate, no token) against libcoap's
# coap-server-openssl, which asks for a client certificate signed by the test CA and logs every
# PDU it decrypts. libcoap is no ThingsBoard (it answers 4.04), so this checks the transport:
# the session comes up from config.json's files and the requests use the token-less paths.
import shutil

import pytest

from tests.dtls_server import SERVER, DtlsServer, stop
from tests.e2e.conftest import make_config, rows
from tests.pki import Pki

pytestmark = pytest.mark.skipif(not SERVER, reason="libcoap3-bin (coap-server-openssl) missing")


def test_x509_device_over_coaps_uses_token_less_paths(sim, dev, device_root, firmware, tmp_path):
    pki = Pki(tmp_path / "pki")
    log = tmp_path / "server.log"
    server = DtlsServer(
        ["-c", pki.server.pem, "-j", pki.server.key_pem, "-C", pki.ca.pem, "-v", "7"], log
    )
    try:
        for name, src in (("ca.der", pki.ca.der), ("dev.pem", pki.client.pem)):
            shutil.copy(src, device_root / name)
        shutil.copy(pki.client.key_der, device_root / "dev.key")
        cfg = make_config(sim, token="")
        cfg["server"].update(
            host="127.0.0.1",
            port=server.port,
            coaps=True,
            ca="ca.der",
            client_cert="dev.pem",  # PEM works too (converted at boot)
            client_key="dev.key",
        )
        fw = firmware(device_root, cfg)
        fw.wait_line("I dtls: DTLS session up: TLS-ECDHE-ECDSA", timeout=20)
        fw.wait_line("attributes not sent", timeout=20)  # libcoap: 4.04, as expected
        text = log.read_text(errors="replace")
    finally:
        stop(server.proc)
    posts = [line for line in text.splitlines() if "c:POST i:" in line]
    assert any("[ Uri-Path:api, Uri-Path:v1, Uri-Path:attributes" in p for p in posts), text
    # token-less paths only: api/v1/<endpoint>, nothing between
    assert all("[ Uri-Path:api, Uri-Path:v1, Uri-Path:" in p for p in posts), posts
    assert not [p for p in posts if p.count("Uri-Path:") != 3], posts
    assert rows(sim, dev["id"]) == []  # tbsim heard nothing: all went to libcoap
