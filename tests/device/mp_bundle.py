# App bundles on the unix port: firmware/bundle.py unpacks and reads back, refuses bad paths,
# truncation and corrupt files without touching the running slot; lib/ota/appslot.py follows
# the bootloader's rules (new -> trying -> valid, or back to the previous slot); a bundle
# written through lib/ota's Writer is installed only when its checksum holds.
# Each case works in its own /tmp/mp_bundle_<random>/ folder.
import hashlib
import os
import random
import struct
import sys
from binascii import crc32, hexlify

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/lib")

from ota import ChecksumMismatch, appslot  # noqa: E402
from ota.writer import Writer  # noqa: E402

from firmware import bundle  # noqa: E402

FILES = [("firmware/__init__.py", b"# app\n"), ("lib/coap/x.py", b"X = 1\n" * 300)]


def pack(files, crc_of=None):
    # the format bundle.py documents (tools/bundle.py builds it on the host)
    out = b"CBB1"
    for path, data in files:
        crc = crc32(crc_of if crc_of is not None else data)
        out += struct.pack(">H", len(path)) + path.encode()
        out += struct.pack(">II", len(data), crc) + data
    return out + b"\0\0"


def fresh():
    root = "/tmp/mp_bundle_%08x/" % random.getrandbits(32)
    os.mkdir(root)
    os.mkdir(root + "apps")
    return root


def put(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def listing(path):
    return sorted(e[0] for e in os.ilistdir(path))


def refused(root, data, words):
    put(root + "b.bin", data)
    try:
        bundle.unpack(root + "b.bin", root + "apps/a")
    except bundle.BundleError as e:
        assert words in str(e), str(e)
        return
    raise AssertionError("unpacked")


def test_unpack_writes_every_file_and_reads_it_back():
    root = fresh()
    put(root + "b.bin", pack(FILES))
    os.mkdir(root + "apps/a")
    put(root + "apps/a/stale.py", b"old")  # the slot is emptied first
    bundle.unpack(root + "b.bin", root + "apps/a")
    assert listing(root + "apps/a") == ["firmware", "lib"]
    for path, data in FILES:
        assert read(root + "apps/a/" + path) == data


def test_bad_bundles_are_refused_with_the_reason():
    root = fresh()
    refused(root, b"PK\x03\x04" + pack(FILES)[4:], "no CBB1 magic")
    refused(root, pack([("../boot.py", b"x")]), "bad path")
    refused(root, pack([("/main.py", b"x")]), "bad path")
    refused(root, pack([("lib//x.py", b"x")]), "bad path")
    refused(root, pack(FILES)[:-40], "ends inside lib/coap/x.py")
    refused(root, pack(FILES)[:30], "truncated")
    refused(root, pack(FILES, crc_of=b"other"), "does not read back as written")
    refused(root, b"CBB1\0\0", "empty bundle")
    assert "boot.py" not in listing(root) and "main.py" not in listing(root)


def test_slots_follow_the_bootloader_rules():
    root = fresh()
    assert appslot.read(root) == {"run": "", "prev": "", "state": "valid"}
    assert appslot.other(root) == "a"
    path = list(sys.path)
    try:
        appslot.set_boot(root, "a")
        assert appslot.choose(root) == "a"  # first boot of the new slot: on trial
        assert sys.path[:2] == [root + "apps/a", root + "apps/a/lib"]
        assert appslot.pending(root) and appslot.other(root) == "b"
        assert appslot.choose(root) == ""  # booted again unconfirmed: back
        assert sys.path.count(root + "apps/a") == 0
        st = appslot.read(root)
        assert (st["run"], st["state"], st["aborted"]) == ("", "valid", "a")
        appslot.set_boot(root, "a")
        appslot.choose(root)
        appslot.confirm(root)
        assert appslot.choose(root) == "a" and not appslot.pending(root)
        assert not appslot.rollback("nothing on trial", root)
        appslot.set_boot(root, "b")
        appslot.choose(root)
        assert appslot.rollback("ImportError('x')", root)  # main.py: the app cannot start
        st = appslot.read(root)
        assert (st["run"], st["aborted"], st["reason"]) == ("a", "b", "ImportError('x')")
        assert sys.path[:2] == [root + "apps/a", root + "apps/a/lib"]
    finally:
        sys.path[:] = path


def _write_through(root, data, expected):
    store = bundle.BundleStore(root, "a", 1 << 20)
    w = Writer(store, len(data), expected, "SHA256", magic=None)
    for i in range(0, len(data), 1000):
        w.write(data[i : i + 1000])
    w.finish()


def test_a_bundle_through_the_writer_is_installed_only_when_its_checksum_holds():
    root = fresh()
    data = pack(FILES)
    good = hexlify(hashlib.sha256(data).digest()).decode()
    try:
        _write_through(root, data, "00" * 32)
    except ChecksumMismatch:
        pass
    else:
        raise AssertionError("installed")
    assert appslot.read(root)["run"] == "" and "a" not in listing(root + "apps")
    _write_through(root, data, good)
    assert appslot.read(root) == {"run": "a", "prev": "", "state": "new"}
    assert read(root + "apps/a/lib/coap/x.py") == FILES[1][1]
    assert "bundle.bin" not in listing(root + "apps")
