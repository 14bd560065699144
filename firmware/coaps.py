# coaps.py: the DTLS settings of config.json made into an SSLContext: reads the certificate and
# key files (paths relative to the board's root unless absolute) and reports each problem
# with its key, like a config problem. Loaded only with server.coaps. Never puts a key or a
# PSK into a message.
import sys

from coap.dtlscontext import context, der

FILES = (
    ("ca", "CA certificate"),
    ("pin", "pinned certificate"),
    ("client_cert", "client certificate"),
    ("client_key", "private key"),
)
_ARG = {"ca": "ca", "pin": "pin", "client_cert": "cert", "client_key": "key"}


def credentials(board, server):
    # -> (SSLContext, []) or (None, ["server.<key>: <problem>", ...])
    import ssl

    if not hasattr(ssl, "PROTOCOL_DTLS_CLIENT"):  # DTLS came with MicroPython 1.25
        v = "%d.%d.%d" % sys.implementation.version[:3]
        return None, ["server.coaps: MicroPython %s has no DTLS; coaps needs 1.25 or later" % v]
    problems = []
    data = {}
    for key, what in FILES:
        path = server[key]
        if path is None:
            continue
        full = board.path(path)
        try:
            with open(full, "rb") as f:
                raw = f.read()
        except OSError as e:
            problems.append("server.%s: cannot read %s (%s)" % (key, path, _errno(e)))
            continue
        try:
            der(raw, what)
        except ValueError:
            problems.append("server.%s: %s is not a DER or PEM %s" % (key, path, what))
            continue
        data[_ARG[key]] = raw
    if problems:
        return None, problems
    psk = None
    if server["psk_identity"] is not None:
        psk = (server["psk_identity"].encode(), server["psk_key"].encode())
    try:
        return context(psk=psk, **data), []
    except ValueError as e:  # "cert: invalid key", "ca: invalid cert", no PSK in this port
        text = str(e)
        key = {"ca": "ca", "pin": "pin", "cert": "client_cert"}.get(text.split(":")[0])
        if key == "client_cert" and "key" in text.split(":")[-1]:
            key = "client_key"
        if key is None:
            key = "psk_key" if psk else "coaps"
        return None, ["server.%s: %s" % (key, text.split(": ")[-1])]


def _errno(e):
    import errno

    code = e.args[0] if e.args else 0
    return errno.errorcode.get(code, str(code))
