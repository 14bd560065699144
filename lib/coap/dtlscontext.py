# dtlscontext.py: the SSLContext of a coaps client (coap/dtls.py), from a CA, a pinned server
# certificate or a PSK, and an optional client certificate (X.509 device login). Certificates
# and keys are DER or PEM. Needed only while a session's settings are read: a device lets it
# go after boot.
import ssl
from binascii import a2b_base64

from .dtls import pinned_check


def der(data, what="certificate"):
    # The DER items in data: DER as it is (several concatenated ones are split), PEM decoded.
    data = bytes(data)
    out = []
    if data[:5] == b"-----":
        b64 = None
        for line in data.split(b"\n"):
            line = line.strip()
            if line.startswith(b"-----BEGIN"):
                b64 = []
            elif line.startswith(b"-----END") and b64 is not None:
                out.append(a2b_base64(b"".join(b64)))
                b64 = None
            elif b64 is not None:
                b64.append(line)
    else:
        i = 0
        while i + 2 <= len(data) and data[i] == 0x30:  # SEQUENCE, then its length
            n, h = data[i + 1], 2
            if n & 0x80:
                h += n & 0x7F
                n = int.from_bytes(data[i + 2 : i + h], "big")
            out.append(data[i : i + h + n])
            i += h + n
        if i != len(data):
            out = []
    if not out:
        raise ValueError("not a DER or PEM %s" % what)
    return out


def context(ca=None, pin=None, cert=None, key=None, psk=None):
    # An SSLContext for a DTLS client. The server is checked against ca (DER or PEM bytes, one
    # or more certificates: it must be signed by one of them, be valid now and carry the host
    # name) or pin (the server must present exactly this certificate). psk: (identity, key)
    # bytes, instead of certificates. cert, key: the client certificate (X.509 device login).
    # Returned is the context under ssl's Python wrapper, so that neither the wrapper's code
    # nor this module's stays in RAM with the session.
    if psk is None and ca is None and pin is None:
        raise ValueError("coaps needs a CA, a pinned certificate or a PSK")
    ctx = ssl.SSLContext(ssl.PROTOCOL_DTLS_CLIENT)
    c = getattr(ctx, "_context", ctx)  # the tls.SSLContext under the ssl wrapper
    if psk is not None:
        if not hasattr(c, "psk_key"):
            raise ValueError("this MicroPython's TLS has no PSK")
        ctx.verify_mode = ssl.CERT_NONE  # nothing to verify: only PSK suites are offered
        c.psk_identity, c.psk_key = psk
        c.set_ciphers([s for s in c.get_ciphers() if "-PSK-WITH-" in s])
        return c
    if ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        for item in der(ca, "CA certificate"):
            _load("ca", lambda d: ctx.load_verify_locations(cadata=d), item)
    else:
        # the chain is not checked (there may be no CA to check it with)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        c.verify_callback = pinned_check(der(pin, "pinned certificate")[0])
    if cert is not None:
        _load("cert", ctx.load_cert_chain, der(cert)[0], der(key, "key")[0])
    return c


def _load(what, f, *args):
    # mbedTLS says "invalid cert" or "invalid key": add which argument it was
    try:
        f(*args)
    except ValueError as e:
        raise ValueError(what + ": " + str(e)) from None
