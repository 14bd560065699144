# Packaging: package.json lists every library file and `mip install` of it on the unix port
# (from a local HTTP server) gives working libraries; firmware/manifest.py freezes what exists.
import http.server
import json
import subprocess
import threading
from pathlib import Path

from mpenv import MICROPYTHON, ROOT

LIBS = ("coap", "thingsboard", "protobuf", "ota")


def test_package_json_lists_every_library_file():
    urls = json.loads((ROOT / "package.json").read_text())["urls"]
    want = sorted(
        ["%s/%s" % (p, f.name), "lib/%s/%s" % (p, f.name)]
        for p in LIBS
        for f in (ROOT / "lib" / p).glob("*.py")
    )
    assert sorted(urls) == want


def test_mip_install_from_the_repository(tmp_path):
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(ROOT))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/package.json" % server.server_address[1]
        code = (
            "import mip; mip.install(%r, target=%r)\n"
            "import sys; sys.path.insert(0, %r)\n"
            "from coap.codec import CON, GET\nfrom coap.message import Message\n"
            "from thingsboard.device import Device\n"
            "from ota.checksum import new, hexdigest\n"
            "h = new('CRC32'); h.update(b'hello'); print(hexdigest(h))\n"
            "print(Message(CON, GET, 1).encode())\n"
        ) % (url, str(tmp_path), str(tmp_path))
        p = subprocess.run(
            [str(MICROPYTHON), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={"MICROPYPATH": ".frozen"},
        )
    finally:
        server.shutdown()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-2:] == ["86a61036", "b'@\\x01\\x00\\x01'"]
    for p_ in LIBS:
        installed = sorted(f.name for f in (tmp_path / p_).iterdir())
        assert installed == sorted(f.name for f in (ROOT / "lib" / p_).glob("*.py"))


class Options:
    """MicroPython's manifest `options` when none are given, as in the ESP32's build."""

    def defaults(self, **kwargs):
        self.__dict__.update(kwargs)


def test_manifest_freezes_existing_packages():
    calls = []
    env = {
        "options": Options(),
        "include": lambda path: calls.append(("include", path)),
        "package": lambda name, base_path=".", opt=None: calls.append(
            ("package", name, base_path)
        ),
    }
    manifest = ROOT / "firmware" / "manifest.py"
    exec(compile(manifest.read_text(), str(manifest), "exec"), env)
    assert calls[0] == ("include", "$(PORT_DIR)/boards/manifest.py")  # the ESP32's own modules
    packages = [c for c in calls if c[0] == "package"]
    assert {c[1] for c in packages} == set(LIBS) | {"firmware"}
    for _, name, base in packages:
        assert (Path(manifest.parent, base, name) / "__init__.py").exists(), name
