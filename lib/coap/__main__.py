# micropython -m coap [options] URI: a command-line CoAP client with coap-client's core flags
# (-h prints them).

import asyncio
import sys

from .block import download, upload
from .client import CoapTimeout, ResponseError, connect
from .codec import GET, OBSERVE, POST, code_str
from .codes import CONTENT_FORMAT, DELETE, FETCH, PUT
from .uri import parse_uri

METHODS = {"get": GET, "post": POST, "put": PUT, "delete": DELETE, "fetch": FETCH}
UINT_OPTIONS = (OBSERVE, CONTENT_FORMAT, 14, 17, 23, 27, 28, 60)  # Max-Age, Accept, Block, Size
USAGE = """usage: micropython -m coap [options] URI    (coap:// or coaps://)
  -m method   get (default), post, put, delete, fetch
  -e text     payload           -f file    payload from a file ("-": none)
  -O num,val  add option (repeatable; val as text, or 0x.. hex, or a number for uint options)
  -T token    token as hex      -N         non-confirmable
  -o secs     observe for secs  -b size    block size (16..1024) for Block1/Block2
  -A fmt      content format number (e.g. 50 for JSON)
  -t ms       give up after (30 s)  -v     show the response options
coaps:// (DTLS; files DER or PEM):
  -R file     CA certificate(s) the server's must be signed by (-C: the same)
  -c file     client certificate    -j file    its private key
  -u identity PSK identity          -k key     pre-shared key (instead of certificates)
Prints the response code, then the payload; exits 0 on 2.xx, 1 otherwise."""
TLS_FLAGS = {"-R": "ca", "-C": "ca", "-c": "cert", "-j": "key", "-u": "identity", "-k": "psk"}


class UsageError(Exception):
    pass


class Help(Exception):
    pass


def parse_args(argv):
    a = {"method": "get", "payload": b"", "opts": [], "token": None, "con": True}
    a.update({"observe": 0, "block": 0, "format": None, "timeout": 30000, "verbose": False})
    a["uri"] = None
    a["tls"] = {}
    it = iter(argv)
    for arg in it:
        if arg in ("-h", "--help"):
            raise Help
        if arg == "-N":
            a["con"] = False
            continue
        if arg == "-v":
            a["verbose"] = True
            continue
        if not arg.startswith("-"):
            a["uri"] = arg
            continue
        try:
            val = next(it)
        except StopIteration:
            raise UsageError("%s needs a value" % arg) from None
        if arg == "-m":
            if val.lower() not in METHODS:
                raise UsageError("unknown method %s (use %s)" % (val, ", ".join(METHODS)))
            a["method"] = val.lower()
        elif arg == "-e":
            a["payload"] = val.encode()
        elif arg == "-f":
            with open(val, "rb") as f:
                a["payload"] = f.read()
        elif arg == "-O":
            num, _, v = val.partition(",")
            a["opts"].append(option(int(num), v))
        elif arg == "-T":
            a["token"] = bytes.fromhex(val)
        elif arg in TLS_FLAGS:
            a["tls"][TLS_FLAGS[arg]] = val
        elif arg in ("-o", "-b", "-A", "-t"):
            key = {"-o": "observe", "-b": "block", "-A": "format", "-t": "timeout"}[arg]
            a[key] = int(val)
        else:
            raise UsageError("unknown flag %s (-h: usage)" % arg)
    if not a["uri"]:
        raise UsageError("no URI given (-h: usage)")
    return a


def option(num, v):
    if v.startswith("0x"):
        return (num, bytes.fromhex(v[2:]))
    if num in UINT_OPTIONS and v.isdigit():
        return (num, int(v))
    return (num, v)


class Stream:
    # block-wise payload straight to stdout, after the code line
    def __init__(self):
        self.started = False

    def write(self, data):
        if not self.started:
            self.started = True
            print("2.05")
        sys.stdout.buffer.write(data)


def show(ex, verbose):
    print(code_str(ex.code))
    if verbose:
        for num, v in ex.view.options():
            print("  option %d: %s" % (num, v))
    data = bytes(ex.payload())
    if data:
        try:
            print(data.decode())
        except UnicodeError:
            print(data.hex())


async def run(a):
    secure, host, port, opts = parse_uri(a["uri"])
    opts += a["opts"]
    if a["format"] is not None:
        opts.append((CONTENT_FORMAT, a["format"]))
    method = METHODS[a["method"]]
    if secure:
        client = await secure_client(host, port, a)
    elif a["tls"]:
        raise UsageError("%s need a coaps:// URI" % ", ".join(sorted(a["tls"])))
    else:
        client = connect(host, port, response_timeout=a["timeout"])
    client.start()
    ex = client.exchange()
    try:
        if a["observe"]:
            return await observe(client, opts, a)
        if a["block"] and method in (GET, FETCH) and not a["payload"]:
            await download(
                client, opts, Stream(), a["block"], ex, method, a["timeout"], a["token"]
            )
            print()
            return True
        if a["block"]:
            await upload(
                client, method, opts, a["payload"], a["block"], ex, a["timeout"], a["token"]
            )
        else:
            await ex.request(method, opts, a["payload"], a["con"], a["timeout"], a["token"])
        show(ex, a["verbose"])
        return ex.code >> 5 == 2
    finally:
        client.close()


async def secure_client(host, port, a):
    # a DTLS session, established before the first request so that its failure is the error
    from .dtls import connect as dtls_connect
    from .dtlscontext import context
    from .handshake import handshake

    t = a["tls"]
    if ("cert" in t) != ("key" in t):
        raise UsageError("-c (certificate) and -j (key) go together")
    if ("psk" in t) != ("identity" in t):
        raise UsageError("-u (PSK identity) and -k (key) go together")
    if "psk" in t and ("ca" in t or "cert" in t):
        raise UsageError("a PSK (-u, -k) is used instead of certificates (-R, -c, -j)")
    if "psk" not in t and "ca" not in t:
        raise UsageError("coaps needs -R ca-file (the server's CA) or a PSK (-u, -k)")
    files = {k: read(t.get(k), flag) for k, flag in (("ca", "-R"), ("cert", "-c"), ("key", "-j"))}
    psk = (t["identity"].encode(), t["psk"].encode()) if "psk" in t else None
    ctx = context(psk=psk, **files)
    client = dtls_connect(host, port, ctx, response_timeout=a["timeout"])
    try:
        await handshake(client.sock, min(a["timeout"], 10000))
    except OSError:
        client.close()
        raise
    return client


def read(path, flag):
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError("%s %s: cannot read it (%s)" % (flag, path, e)) from None


async def observe(client, opts, a):
    def notified(obs):
        show(obs, a["verbose"])

    obs = await client.observe(opts, notified, a["con"], token=a["token"])
    if obs.active:
        await asyncio.sleep_ms(a["observe"] * 1000)
        await obs.cancel()
    return obs.code >> 5 == 2


def main(argv):
    try:
        ok = asyncio.run(run(parse_args(argv)))
    except Help:
        print(USAGE)
        return 0
    except (UsageError, ValueError) as e:
        print("error:", e)
        return 2
    except (CoapTimeout, ResponseError, OSError) as e:
        print("error:", e)
        return 1
    return 0 if ok else 1


sys.exit(main(sys.argv[1:]))
