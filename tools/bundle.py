"""Build an app bundle (the files of lib/ and firmware/, the format firmware/bundle.py
documents) and upload it to tbsim (or ThingsBoard's REST API) as a SOFTWARE package assigned to
a device: the device's software update then installs it without reflashing MicroPython.

Usage:
  python -m tools.bundle build OUT [--mpy]
  python -m tools.bundle upload FILE --title T --version V --device NAME
                                [--url http://127.0.0.1:8080] [--algorithm SHA256]
"""

import argparse
import binascii
import json
import struct
import sys
import urllib.request
from pathlib import Path

from tools import deploy
from tools.deploy import REPO

MAGIC = b"CBB1"


def pack(files):
    # files: [(path, bytes)] -> the bundle
    parts = [MAGIC]
    for path, data in files:
        name = path.encode()
        if path.startswith("/") or ".." in path.split("/") or not 0 < len(name) < 65536:
            raise ValueError("bad path for a bundle: %r" % path)
        parts.append(struct.pack(">H", len(name)) + name)
        parts.append(struct.pack(">II", len(data), binascii.crc32(data)) + data)
    parts.append(b"\0\0")
    return b"".join(parts)


def unpack(bundle):
    # -> [(path, bytes)]; raises ValueError on anything that is not a well-formed bundle
    if bundle[:4] != MAGIC:
        raise ValueError("not an app bundle (no CBB1 magic)")
    i, out = 4, []
    while True:
        (n,) = struct.unpack_from(">H", bundle, i)
        i += 2
        if not n:
            break
        path = bundle[i : i + n].decode()
        size, crc = struct.unpack_from(">II", bundle, i + n)
        i += n + 8
        data = bundle[i : i + size]
        if len(data) != size or binascii.crc32(data) != crc:
            raise ValueError("%s is truncated or corrupt" % path)
        out.append((path, data))
        i += size
    return out


def build(mpy=False, out=deploy.BUILD, cross=None):
    # the files tools.deploy puts on a board (lib/ packages and firmware/), as source or as the
    # .mpy it compiles (into out, with cross: deploy.build's); package __init__ files stay
    # source either way (tiny, and a bundle may carry its own)
    if not mpy:
        return pack([(rel, (REPO / rel).read_bytes()) for rel in deploy.sources()])
    files = []
    for path, local in deploy.build(out=out, cross=cross)[0]:
        rel = path[:-4] + ".py"
        if rel.endswith("__init__.py"):
            files.append((rel, (REPO / rel).read_bytes()))
        else:
            files.append((path, local.read_bytes()))
    return pack(files)


def _http(url, method="GET", body=None, ctype="application/json"):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def upload(url, bundle, title, version, device, algorithm="SHA256"):
    # create the SOFTWARE package, upload the bundle, assign it to the device -> package id
    url = url.rstrip("/")
    pkg = _http(
        url + "/api/otaPackage",
        "POST",
        {"title": title, "version": version, "type": "SOFTWARE"},
    )
    pid = pkg["id"]["id"]
    path = "/api/otaPackage/%s?checksumAlgorithm=%s" % (pid, algorithm)
    _http(url + path, "POST", bundle, "application/octet-stream")
    dev = _http(url + "/api/tenant/devices?deviceName=" + urllib.request.quote(device))
    dev["softwareId"] = {"id": pid, "entityType": "OTA_PACKAGE"}
    _http(url + "/api/device", "POST", dev)
    return pid


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the bundle of this checkout's lib/ and firmware/")
    b.add_argument("out", type=Path)
    b.add_argument("--mpy", action="store_true", help="compile to .mpy with mpy-cross")
    u = sub.add_parser("upload", help="upload a bundle as a SOFTWARE package and assign it")
    u.add_argument("file", type=Path)
    u.add_argument("--title", required=True)
    u.add_argument("--version", required=True)
    u.add_argument("--device", required=True, help="the device's name")
    u.add_argument("--url", default="http://127.0.0.1:8080", help="tbsim's HTTP API")
    u.add_argument("--algorithm", default="SHA256")
    a = ap.parse_args(argv)
    if a.cmd == "build":
        data = build(a.mpy)
        a.out.write_bytes(data)
        print("%s: %d files, %d bytes" % (a.out, len(unpack(data)), len(data)))
        return 0
    try:
        pid = upload(a.url, a.file.read_bytes(), a.title, a.version, a.device, a.algorithm)
    except (OSError, ValueError, KeyError) as e:
        print("upload failed: %s" % e, file=sys.stderr)
        return 1
    print("package %s (%s %s) assigned to %s" % (pid, a.title, a.version, a.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
