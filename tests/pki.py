# Test certificates, made at test time (never committed): a CA, server and client certificates
# (EC P-256), expired ones, written as PEM and DER. Uses the PyPI package cryptography.
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


class Cert:
    """A certificate and its key, saved under dir as NAME.pem, NAME.der, NAME.key (PEM) and
    NAME.key.der; the attributes hold those paths (absolute: libcoap needs that)."""

    def __init__(self, directory, name, cert, key):
        self.cert = cert
        self.key = key
        d = Path(directory).resolve()
        self.pem = d / (name + ".pem")
        self.der = d / (name + ".der")
        self.key_pem = d / (name + ".key")
        self.key_der = d / (name + ".key.der")
        self.pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        self.key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        self.key_der.write_bytes(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(directory, name, cn, ca=None, server=False, expired=False, is_ca=False):
    """A certificate for cn signed by ca (a Cert), or self-signed when ca is None. server: with
    subjectAltName localhost and 127.0.0.1. expired: valid only for some days a year ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - 400 * DAY, now - 370 * DAY) if expired else (now - DAY, now + 30 * DAY)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject if ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if server:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    elif not is_ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    cert = b.sign(ca.key if ca else key, hashes.SHA256())
    return Cert(directory, name, cert, key)


class Pki:
    """The usual set: ca, server (signed by ca), client (signed by ca), other_ca (trusted by
    nobody), expired_server and expired_client (signed by ca, expired), selfsigned (a server
    certificate signed by itself)."""

    def __init__(self, directory):
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d.resolve()
        self.ca = issue(d, "ca", "coapboard test CA", is_ca=True)
        self.other_ca = issue(d, "other_ca", "someone else's CA", is_ca=True)
        self.server = issue(d, "server", "localhost", self.ca, server=True)
        self.client = issue(d, "client", "device-001", self.ca)
        self.expired_server = issue(d, "expired_server", "localhost", self.ca, True, True)
        self.expired_client = issue(d, "expired_client", "device-001", self.ca, expired=True)
        self.selfsigned = issue(d, "selfsigned", "localhost", server=True)
