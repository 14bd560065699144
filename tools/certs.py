# certs.py: PEM certificates and keys to DER for the board. MicroPython's TLS reads DER only;
# the firmware converts PEM at boot too, but DER files save that work and the RAM it takes.
#
#   python -m tools.certs IN.pem OUT.der    every PEM block of IN, DER, one after the other
#
# pem_to_der(data) is the same for other tools (a deploy step). Only the standard library.
import base64
import sys


def pem_to_der(data):
    """The DER bytes of every PEM block in data (bytes or str), in order; ValueError if there
    is none or one is encrypted (the board cannot use an encrypted key)."""
    if isinstance(data, bytes):
        data = data.decode("ascii", "replace")
    out, body = [], None
    for line in data.splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN"):
            if "ENCRYPTED" in line:
                raise ValueError("an encrypted key: decrypt it first (openssl pkey -in KEY)")
            body = []
        elif line.startswith("-----END") and body is not None:
            out.append(base64.b64decode("".join(body), validate=True))
            body = None
        elif body is not None:
            if ":" in line:  # Proc-Type / DEK-Info headers of a legacy encrypted key
                raise ValueError("an encrypted key: decrypt it first (openssl pkey -in KEY)")
            body.append(line)
    if not out:
        raise ValueError("no PEM block found")
    return out


def convert(src, dst):
    with open(src, "rb") as f:
        items = pem_to_der(f.read())
    with open(dst, "wb") as f:
        f.write(b"".join(items))
    return len(items)


def main(argv):
    if len(argv) != 2:
        print("usage: python -m tools.certs IN.pem OUT.der")
        return 2
    try:
        n = convert(argv[0], argv[1])
    except (OSError, ValueError) as e:
        print("error: %s: %s" % (argv[0], e))
        return 1
    print("%s: %d item(s) written as DER" % (argv[1], n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
