# tools/bundle.py on the host: the bundle holds exactly the app's files, round-trips, refuses
# paths a device would refuse, and --mpy compiles everything but the package __init__ files.
import struct

import pytest

from tools import bundle

REPO = bundle.REPO


def test_build_packs_every_app_file_and_unpacks_to_the_same_bytes():
    files = bundle.unpack(bundle.build())
    names = [p for p, _ in files]
    assert "firmware/app.py" in names and "lib/coap/client.py" in names
    assert "lib/ota/appslot.py" in names and "firmware/bundle.py" in names
    assert "firmware/manifest.py" not in names and "main.py" not in names
    assert all(data == (REPO / p).read_bytes() for p, data in files)


def test_mpy_build_compiles_modules(tmp_path):
    assert bundle.main(["build", str(tmp_path / "app.cbb"), "--mpy"]) == 0
    files = dict(bundle.unpack((tmp_path / "app.cbb").read_bytes()))
    assert files["firmware/app.mpy"][:1] == b"M"  # .mpy header
    assert "firmware/__init__.py" in files and "firmware/app.py" not in files


@pytest.mark.parametrize("path", ["../boot.py", "/main.py", ""])
def test_paths_a_device_refuses_are_refused_here(path):
    with pytest.raises(ValueError, match="bad path"):
        bundle.pack([(path, b"x")])


def test_unpack_refuses_corrupt_bundles():
    good = bundle.pack([("a.py", b"abc")])
    with pytest.raises(ValueError, match="no CBB1 magic"):
        bundle.unpack(b"XXXX" + good[4:])
    bad = good[:-3] + bytes([good[-3] ^ 1]) + good[-2:]  # last content byte flipped
    with pytest.raises(ValueError, match="a.py is truncated or corrupt"):
        bundle.unpack(bad)
    assert good[4:6] == struct.pack(">H", 4)
