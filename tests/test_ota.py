# lib/ota under CPython: checksum formats cross-checked with hashlib and zlib (CRC32 as
# ThingsBoard's little-endian hex), the digests tests/device/mp_ota.py relies on, and the writer
# against the partition simulation with random chunk splits.
import ast
import hashlib
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "lib", ROOT / "tests" / "device"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from ota import ChecksumMismatch, UnsupportedAlgorithm, checksum  # noqa: E402
from ota.writer import Writer  # noqa: E402
from otaimage import image  # noqa: E402

from firmware.board import partition_sim as sim  # noqa: E402

REFERENCE = {
    "SHA256": lambda d: hashlib.sha256(d).hexdigest(),
    "MD5": lambda d: hashlib.md5(d).hexdigest(),
    "CRC32": lambda d: zlib.crc32(d).to_bytes(4, "little").hex(),
}


def device_constants():
    tree = ast.parse((ROOT / "tests" / "device" / "mp_ota.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("N", "DIGESTS"):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out["N"], out["DIGESTS"]


def digest(alg, parts):
    h = checksum.new(alg)
    for p in parts:
        h.update(p)
    return checksum.hexdigest(h)


def test_crc32_is_little_endian_hex():
    assert zlib.crc32(b"hello") == 0x3610A686
    assert digest("CRC32", [b"hello"]) == "86a61036"
    assert digest("CRC32", [b""]) == "00000000"


def test_device_digests_match_cpython():
    n, digests = device_constants()
    data = image(n)
    assert set(digests) == set(REFERENCE)
    for alg, want in digests.items():
        assert want == REFERENCE[alg](data), alg


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    alg=st.sampled_from(sorted(REFERENCE)),
)
def test_incremental_matches_reference(data, cuts, alg):
    bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    parts = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert digest(alg, parts) == REFERENCE[alg](data)


@pytest.mark.parametrize("alg", ["SHA384", "SHA512", "MURMUR3_32", "MURMUR3_128", "nope"])
def test_unsupported_named(alg):
    with pytest.raises(UnsupportedAlgorithm, match=alg.upper() if alg != "nope" else "nope"):
        checksum.new(alg)


@pytest.fixture
def flash(tmp_path):
    sim.flash(str(tmp_path), b"\xe9old", 8 * 4096)
    assert sim.bootloader(str(tmp_path), 8 * 4096) == "ota_0"
    return sim.Partition(sim.Partition.RUNNING).get_next_update()


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
    alg=st.sampled_from(["SHA256", "MD5", "CRC32"]),
)
def test_writer_any_chunking(tmp_path_factory, sizes, alg):
    root = str(tmp_path_factory.mktemp("p"))
    sim.flash(root, b"\xe9old", 8 * 4096)
    sim.bootloader(root, 8 * 4096)
    part = sim.Partition(sim.Partition.RUNNING).get_next_update()
    data = image(13522)
    w = Writer(part, len(data), REFERENCE[alg](data), alg)
    i = k = 0
    while i < len(data):
        w.write(data[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    w.finish()
    buf = bytearray(len(data))
    part.readblocks(0, buf)
    assert bytes(buf) == data
    assert sim.bootloader() == "ota_1"


def test_writer_mismatch_keeps_old_boot(flash):
    data = image(5000)
    w = Writer(flash, len(data), REFERENCE["SHA256"](data[:-1] + b"x"), "SHA256")
    w.write(data)
    with pytest.raises(ChecksumMismatch):
        w.finish()
    assert sim.bootloader() == "ota_0"


def test_a_soft_reset_is_no_boot_the_image_on_trial_stays_on_trial(tmp_path):
    # ports/esp32/main.c's soft reset loops in the running image: no bootloader, no rollback
    root = str(tmp_path)
    sim.flash(root, b"\xe9old", 8 * 4096)
    sim.bootloader(root, 8 * 4096)
    sim.Partition("ota_1").writeblocks(0, image(5000))
    sim.Partition("ota_1").set_boot()
    assert sim.bootloader() == "ota_1"  # the reset into it: on trial
    sim._running = None  # a new process: the simulated board's next start
    assert sim.switch_on(root, warm=True) == "ota_1"
    assert sim.Partition(sim.Partition.RUNNING).info()[4] == "ota_1"
    assert sim._records()[1][1] == sim.IMG_PENDING_VERIFY
    sim._running = None
    assert sim.switch_on(root) == "ota_0"  # a real boot: never confirmed, rolled back
    assert sim._records()[1][1] == sim.IMG_ABORTED
