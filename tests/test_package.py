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


# run inside the unix port: install PACKAGE with mip into TARGET, then use the libraries
MIP = """
import mip, requests
get = requests.get
def local(url, **kw):  # GitHub's raw files for OWNER/coapboard, answered by the checkout
    if url.startswith(GITHUB):
        url = SERVED + url[len(GITHUB):]
    print("GET", url)
    return get(url, **kw)
requests.get = local
mip.install(PACKAGE, target=TARGET)
import sys; sys.path.insert(0, TARGET)
from coap.codec import CON, GET
from coap.message import Message
from thingsboard.device import Device
from ota.checksum import new, hexdigest
h = new('CRC32'); h.update(b'hello'); print(hexdigest(h))
print(Message(CON, GET, 1).encode())
"""


def mip_install(tmp_path, package, served):
    """mip.install(package) on the unix port with the checkout served over HTTP at `served`;
    requests for github:example/coapboard's raw files go there too. -> the printed lines"""
    consts = {"GITHUB": "https://raw.githubusercontent.com/example/coapboard/HEAD/"}
    consts.update(SERVED=served, PACKAGE=package, TARGET=str(tmp_path))
    code = "".join("%s = %r\n" % kv for kv in consts.items()) + MIP
    p = subprocess.run(
        [str(MICROPYTHON), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MICROPYPATH": ".frozen"},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-2:] == ["86a61036", "b'@\\x01\\x00\\x01'"]
    for p_ in LIBS:
        installed = sorted(f.name for f in (tmp_path / p_).iterdir())
        assert installed == sorted(f.name for f in (ROOT / "lib" / p_).glob("*.py"))
    return p.stdout.splitlines()


def serve_checkout():
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(ROOT))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/" % server.server_address[1]


def test_mip_install_from_a_url_to_package_json(tmp_path):
    server, url = serve_checkout()
    try:
        out = mip_install(tmp_path, url + "package.json", url)
    finally:
        server.shutdown()
    assert "GET %spackage.json" % url in out and "GET %slib/coap/client.py" % url in out


def test_mip_install_by_the_github_name_the_readme_gives(tmp_path):
    # `mpremote mip install github:<owner>/coapboard` runs this same mip.install on the board
    readme = (ROOT / "README.md").read_text()
    assert "mpremote mip install github:<owner>/coapboard" in readme
    server, url = serve_checkout()
    try:
        out = mip_install(tmp_path, "github:example/coapboard", url)
    finally:
        server.shutdown()
    assert "GET %spackage.json" % url in out  # github:... resolved to the root's package.json
    assert "GET %slib/thingsboard/device.py" % url in out


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
