# tools/certs.py: PEM to DER on the host, checked against the cryptography package's DER.
import pytest

from tests.pki import Pki
from tools import certs


def test_pem_to_der_matches_and_keeps_order(tmp_path):
    pki = Pki(tmp_path)
    bundle = pki.ca.pem.read_bytes() + pki.other_ca.pem.read_bytes()
    assert certs.pem_to_der(bundle) == [pki.ca.der.read_bytes(), pki.other_ca.der.read_bytes()]
    assert certs.pem_to_der(pki.client.key_pem.read_text()) == [pki.client.key_der.read_bytes()]
    out = tmp_path / "ca.der"
    assert certs.main([str(pki.ca.pem), str(out)]) == 0
    assert out.read_bytes() == pki.ca.der.read_bytes()


def test_refuses_what_the_board_cannot_use(tmp_path, capsys):
    with pytest.raises(ValueError, match="no PEM block"):
        certs.pem_to_der(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError, match="encrypted key"):
        certs.pem_to_der("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED")
    assert certs.main([str(tmp_path / "missing.pem"), str(tmp_path / "x.der")]) == 1
    assert "missing.pem" in capsys.readouterr().out
