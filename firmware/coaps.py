# coaps.py: the DTLS settings of config.json made into an SSLContext: reads the certificate and
# key files (paths relative to the board's root unless absolute) and reports each problem
# with its key, like a config problem. Loaded only with server.coaps. Never puts a key or a
# PSK into a message.
import sys

from micropython import const

from coap.dtlscontext import context, der

# server.<key>, what the file holds, the argument of context() it goes to
_FILES = const(
    (
        ("ca", "CA certificate", "ca"),
        ("pin", "pinned certificate", "pin"),
        ("client_cert", "client certificate", "cert"),
        ("client_key", "private key", "key"),
    )
)


def credentials(board, server):
    # -> (SSLContext, []) or (None, ["server.<key>: <problem>", ...])
    import ssl

    if not hasattr(ssl, "PROTOCOL_DTLS_CLIENT"):  # DTLS came with MicroPython 1.25
        why = "server.coaps: MicroPython %d.%d.%d has no DTLS; coaps needs 1.25 or later"
        return None, [why % sys.implementation.version[:3]]
    problems = []
    data = {}
    for key, what, arg in _FILES:
        path = server[key]
        if path is None:
            continue
        full = board.path(path)
        try:
            with open(full, "rb") as f:
                raw = f.read()
        except OSError as e:
            import errno

            code = e.args[0] if e.args else 0
            why = errno.errorcode.get(code, str(code))
            problems.append("server.%s: cannot read %s (%s)" % (key, path, why))
            continue
        try:
            der(raw, what)
        except ValueError:
            problems.append("server.%s: %s is not a DER or PEM %s" % (key, path, what))
            continue
        data[arg] = raw
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
