# lib/ota on the unix port against firmware/board/partition_sim: streaming in odd chunk sizes
# for SHA256, MD5 and CRC32 (digests computed by CPython, see tests/test_ota.py); nothing
# bootable without a matching checksum; bad images refused before any write; a missing erase
# detected; pieces in any order (a download's window); resume after a power cut; rollback
# unless the new app is marked valid.
# Partition files live in /tmp/mp_ota_<random>, removed after.
import os
import sys
from binascii import hexlify

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

from ota import (  # noqa: E402
    ChecksumMismatch,
    ImageRejected,
    OTAError,
    UnsupportedAlgorithm,
    checksum,
    rollback,
)
from ota.writer import Writer  # noqa: E402
from otaimage import image  # noqa: E402

from firmware.board import partition_sim as sim  # noqa: E402

PART = 8 * 4096  # small partitions keep the tests fast
N = 13522  # three blocks and a part
OLD = b"\xe9old app" + b"\x00" * 100
# what CPython's hashlib and zlib give for image(N); tests/test_ota.py checks these
DIGESTS = {
    "SHA256": "1c2dfda1bf319b58947307e8660cc2fa0e54200a2f370237ad31a6171b005461",
    "MD5": "af183afeac1d57434ad87fc31caf8ac6",
    "CRC32": "f66ee11a",
}


IMAGE = image(N)


class Spy:
    # the partition as the writer sees it, recording erase/write/set_boot; erase=False drops
    # erases, flip=block flips one bit on its way into that block
    def __init__(self, part, erase=True, flip=None):
        self.p = part
        self.erase = erase
        self.flip = flip
        self.ops = []

    def ioctl(self, op, arg):
        if op == 6:
            self.ops.append(("erase", arg))
            if not self.erase:
                return 0
        return self.p.ioctl(op, arg)

    def readblocks(self, block, buf, offset=0):
        self.p.readblocks(block, buf, offset)

    def writeblocks(self, block, buf, offset=None):
        self.ops.append(("write", block))
        if block == self.flip:
            buf = bytearray(buf)
            buf[5] ^= 1
        self.p.writeblocks(block, buf, offset)

    def set_boot(self):
        self.ops.append(("set_boot",))
        self.p.set_boot()


class Flash:
    # a fresh simulated flash with OLD in ota_0, booted; removed on exit
    def __enter__(self):
        self.root = "/tmp/mp_ota_" + hexlify(os.urandom(6)).decode()
        os.mkdir(self.root)
        sim.flash(self.root, OLD, PART)
        sim.unerased_writes = 0
        assert sim.bootloader(self.root, PART) == "ota_0"
        return self

    def __exit__(self, *exc):
        for name in os.listdir(self.root):
            os.remove(self.root + "/" + name)
        os.rmdir(self.root)

    def next(self):
        return sim.Partition(sim.Partition.RUNNING).get_next_update()


def content(part, n):
    buf = bytearray(n)
    part.readblocks(0, buf)
    return bytes(buf)


def blank(part):
    return content(part, PART) == b"\xff" * PART


def feed(w, data, size):
    for i in range(0, len(data), size):
        w.write(data[i : i + size])


def boot_label():
    return sim.Partition(sim.Partition.BOOT).info()[4]


def test_stream_odd_chunks_all_algorithms():
    for alg in ("SHA256", "MD5", "CRC32"):
        for size in (1000, 1024, 7):
            with Flash() as f:
                part = f.next()
                assert part.info()[4] == "ota_1"
                w = Writer(part, N, DIGESTS[alg], alg)
                feed(w, IMAGE, size)
                assert w.received == N
                w.finish()
                got = content(part, PART)
                assert got[:N] == IMAGE, (alg, size)
                assert got[N:] == b"\xff" * (PART - N)  # nothing written past the image
                assert sim.unerased_writes == 0
                assert boot_label() == "ota_1"


def test_checksum_formats():
    h = checksum.new("crc32")  # names are case-insensitive, as SDKs send them
    h.update(b"hel")
    h.update(b"lo")
    assert checksum.hexdigest(h) == "86a61036"  # crc32(b"hello") = 0x3610a686, little-endian
    for alg, want in DIGESTS.items():
        h = checksum.new(alg)
        h.update(IMAGE[:5000])
        h.update(IMAGE[5000:])
        assert checksum.hexdigest(h) == want, alg


def test_uppercase_expected_checksum_accepted():
    with Flash() as f:
        w = Writer(f.next(), N, DIGESTS["SHA256"].upper(), "SHA256")
        feed(w, IMAGE, 1024)
        w.finish()
        assert boot_label() == "ota_1"


def test_wrong_checksum_never_bootable():
    for alg in ("SHA256", "MD5", "CRC32"):
        with Flash() as f:
            part = Spy(f.next())
            bad = "0" * len(DIGESTS[alg])
            w = Writer(part, N, bad, alg)
            feed(w, IMAGE, 1000)
            try:
                w.finish()
                raise AssertionError("finish accepted a wrong checksum")
            except ChecksumMismatch as e:
                assert DIGESTS[alg] in str(e) and bad in str(e), str(e)
            assert ("set_boot",) not in part.ops
            assert boot_label() == "ota_0"
            assert sim.bootloader() == "ota_0"


def test_readback_catches_a_bad_flash_write():
    # the incoming data hashes right, but block 1 reaches flash with one bit flipped
    with Flash() as f:
        part = Spy(f.next(), flip=1)
        w = Writer(part, N, DIGESTS["SHA256"], "SHA256")
        feed(w, IMAGE, 1000)
        try:
            w.finish()
            raise AssertionError("finish accepted a corrupt flash")
        except ChecksumMismatch as e:
            assert "read-back" in str(e), str(e)
        assert ("set_boot",) not in part.ops
        assert boot_label() == "ota_0"


def test_unsupported_algorithm_refused_at_start():
    with Flash() as f:
        part = Spy(f.next())
        for alg in ("SHA384", "SHA512", "MURMUR3_32", "MURMUR3_128", "BLAKE2"):
            try:
                Writer(part, N, "00", alg)
                raise AssertionError("accepted " + alg)
            except UnsupportedAlgorithm as e:
                assert alg in str(e), str(e)
        assert part.ops == []
        assert blank(f.next())


def test_too_large_refused_before_any_write():
    with Flash() as f:
        part = Spy(f.next())
        for size in (PART + 1, 0):
            try:
                Writer(part, size, DIGESTS["SHA256"])
                raise AssertionError("accepted size %d" % size)
            except ImageRejected as e:
                assert str(size) in str(e), str(e)
        assert part.ops == []
        w = Writer(part, PART, "00")  # exactly the partition size is fine
        assert w.size == PART


def test_bad_magic_and_merged_image_refused_before_any_write():
    merged = b"\xff" * 0x1000 + IMAGE  # esptool merge-bin: bootloader at 0x1000
    for data, words in ((b"\x00" + IMAGE[1:], "0x00"), (merged, "merged")):
        with Flash() as f:
            part = Spy(f.next())
            w = Writer(part, len(data), "00")
            try:
                w.write(data[:7])
                raise AssertionError("accepted a non-app image")
            except ImageRejected as e:
                assert words in str(e) and "0xE9" in str(e), str(e)
            assert part.ops == []
            assert blank(f.next())


def test_sim_detects_a_missing_erase():
    with Flash() as f:
        part = f.next()
        part.writeblocks(0, b"\x0f" * 16)  # simple form: erases itself
        assert sim.unerased_writes == 0
        part.writeblocks(0, b"\xf0" * 16, 0)  # extended form: no erase, bits only clear
        assert sim.unerased_writes == 1
        assert content(part, 16) == b"\x00" * 16
        part.ioctl(6, 0)
        part.writeblocks(0, b"\xf0" * 16, 0)
        assert sim.unerased_writes == 1
        assert content(part, 16) == b"\xf0" * 16


def test_writer_without_erase_fails_verification():
    # the slot holds an older image; a writer that skipped erases would leave an AND of both
    with Flash() as f:
        old = bytes(0xE9 if i == 0 else (i * 7) & 0xFF for i in range(N))
        f.next().writeblocks(0, old)
        part = Spy(f.next(), erase=False)
        w = Writer(part, N, DIGESTS["SHA256"], "SHA256")
        feed(w, IMAGE, 1024)
        try:
            w.finish()
            raise AssertionError("finish accepted an unerased flash")
        except ChecksumMismatch as e:
            assert "read-back" in str(e), str(e)
        assert sim.unerased_writes > 0
        assert ("set_boot",) not in part.ops


def test_writer_erases_each_block_before_writing_it():
    with Flash() as f:
        part = Spy(f.next())
        w = Writer(part, N, DIGESTS["CRC32"], "CRC32")
        feed(w, IMAGE, 1000)
        w.finish()
        writes = [op for op in part.ops if op[0] != "set_boot"]
        # each block erased once, before the first write into it, and in order
        erased = [b for op, b in writes if op == "erase"]
        assert erased == list(range(4)), writes
        for i, (op, b) in enumerate(writes):
            if op == "write":
                assert ("erase", b) in writes[:i], writes
        assert part.ops[-1] == ("set_boot",)


def window_order(chunks, window=6):
    # chunks as a download's window may write them: each run of `window` answered backwards
    out = []
    for i in range(0, len(chunks), window):
        out += reversed(chunks[i : i + window])
    return out


def write_chunks(w, chunks, size=1000):
    for c in chunks:
        w.write(IMAGE[c * size : (c + 1) * size], c * size)


def test_pieces_in_any_order():
    # flashed is what has no gap before it; each block erased once, in order, before any write
    # into it; the image ends up whole
    with Flash() as f:
        part = Spy(f.next())
        w = Writer(part, N, DIGESTS["SHA256"], "SHA256")
        order = window_order(list(range(14)))
        gaps = []
        for i, c in enumerate(order):
            write_chunks(w, [c])
            done = set(order[: i + 1])
            gap = min(set(range(14)) - done, default=14)
            assert w.flashed == min(gap * 1000, N), (order[: i + 1], w.flashed)
            gaps.append(gap)
        assert gaps[:6] == [0] * 5 + [6]  # chunk 0 came last of its window
        writes = [op for op in part.ops]
        erased = [b for op, b in writes if op == "erase"]
        assert erased == list(range(4)), writes
        for i, (op, b) in enumerate(writes):
            if op == "write":
                assert ("erase", b) in writes[:i], writes
        w.finish()
        assert content(f.next(), N) == IMAGE
        assert sim.unerased_writes == 0
        assert boot_label() == "ota_1"


def test_resume_after_a_power_cut_in_a_window():
    # chunks 0-2 and 4-5 written, 3 still in flight when the power went: the device saved
    # flashed (3000); the resumed writer starts there, and what lay past the gap is written again
    with Flash() as f:
        w = Writer(f.next(), N, DIGESTS["SHA256"], "SHA256")
        write_chunks(w, [0, 1, 2, 5, 4])
        assert w.flashed == 3000
        del w
        assert sim.bootloader() == "ota_0"
        w = Writer(f.next(), N, DIGESTS["SHA256"], "SHA256", offset=3000)
        write_chunks(w, window_order(list(range(3, 14))))
        assert w.flashed == N
        w.finish()
        assert content(f.next(), N) == IMAGE
        assert sim.unerased_writes == 0


def test_too_much_data_and_short_image_refused():
    with Flash() as f:
        part = Spy(f.next())
        w = Writer(part, 100, "00")
        w.write(IMAGE[:60])
        try:
            w.write(IMAGE[60:141])
            raise AssertionError("accepted data past the size")
        except OTAError as e:
            assert "100" in str(e), str(e)
        try:
            w.finish()
            raise AssertionError("finished a short image")
        except OTAError as e:
            assert "60 of 100" in str(e), str(e)
        assert ("set_boot",) not in part.ops


def test_resume_after_power_cut():
    # cut after k chunks of 1000; the device persisted w.flashed (everything written); it
    # resumes there and ends with the same digest, the old image bootable meanwhile
    for k in (1, 4, 5, 9, 13):
        for alg in ("SHA256", "MD5", "CRC32"):
            with Flash() as f:
                w = Writer(f.next(), N, DIGESTS[alg], alg)
                feed(w, IMAGE[: k * 1000], 1000)
                flashed = w.flashed
                assert flashed == k * 1000
                del w  # power cut: RAM is gone
                assert sim.bootloader() == "ota_0"
                offset = flashed // 1000 * 1000
                w = Writer(f.next(), N, DIGESTS[alg], alg, offset=offset)
                assert w.received == offset and w.flashed == offset
                feed(w, IMAGE[offset:], 1000)
                w.finish()
                assert content(f.next(), N) == IMAGE, (k, alg)
                assert sim.bootloader() == "ota_1"


def test_resume_rehashes_what_is_in_flash():
    # a block that changed under the resumed writer is caught: it re-read the flash
    with Flash() as f:
        w = Writer(f.next(), N, DIGESTS["SHA256"], "SHA256")
        feed(w, IMAGE[:9000], 1000)
        part = f.next()
        part.writeblocks(1, b"\x00" * 4096)
        w = Writer(part, N, DIGESTS["SHA256"], "SHA256", offset=8000)
        feed(w, IMAGE[8000:], 1000)
        try:
            w.finish()
            raise AssertionError("finish accepted a changed flash")
        except ChecksumMismatch:
            pass
        assert boot_label() == "ota_0"


def test_resume_of_a_non_app_refused():
    with Flash() as f:
        part = f.next()
        part.writeblocks(0, b"\x00" * 4096)
        try:
            Writer(part, N, DIGESTS["SHA256"], "SHA256", offset=4096)
            raise AssertionError("resumed onto a non-app")
        except ImageRejected:
            pass


def test_sim_set_boot_refuses_a_non_image():
    with Flash() as f:
        try:
            f.next().set_boot()
            raise AssertionError("set_boot accepted a blank slot")
        except OSError as e:
            assert e.args[0] == -5379, e.args
        assert boot_label() == "ota_0"


def update(f):
    w = Writer(f.next(), N, DIGESTS["MD5"], "MD5")
    feed(w, IMAGE, 1024)
    w.finish()


def test_rollback_unless_marked_valid():
    with Flash() as f:
        update(f)
        st = rollback.state(sim.Partition)
        assert st["running"] == "ota_0" and st["boot"] == "ota_1" and st["state"] == "new", st
        assert not rollback.pending(sim.Partition)  # the new image has not run yet
        assert sim.bootloader() == "ota_1"
        assert rollback.state(sim.Partition)["state"] == "pending_verify"
        assert rollback.pending(sim.Partition)
        assert sim.bootloader() == "ota_0"  # reset without cancel(): back to the old image
        st = rollback.state(sim.Partition)
        assert st["running"] == "ota_0" and st["boot"] == "ota_0", st
        assert not rollback.pending(sim.Partition)
        assert sim.bootloader() == "ota_0"


def test_marked_valid_stays():
    with Flash() as f:
        update(f)
        assert sim.bootloader() == "ota_1"
        rollback.cancel(sim.Partition)
        st = rollback.state(sim.Partition)
        assert st["state"] == "valid" and st["running"] == "ota_1", st
        assert not rollback.pending(sim.Partition)
        assert sim.bootloader() == "ota_1"
        assert sim.bootloader() == "ota_1"
        seq = st["seq"]
        # the next update goes to the other slot, with a higher sequence number
        assert f.next().info()[4] == "ota_0"
        update(f)
        assert sim.bootloader() == "ota_0"
        st = rollback.state(sim.Partition)
        assert st["seq"] > seq and st["state"] == "pending_verify", st
        assert sim.bootloader() == "ota_1"  # not confirmed: back to the confirmed ota_1


def test_first_boot_writes_the_first_otadata_record_as_the_bootloader_does():
    # ESP-IDF's bootloader, finding both otadata records blank and no factory app, boots ota_0
    # and writes record 0 as seq 1, valid (bootloader_utility.c, with rollback enabled): the
    # first update's record then goes into the other sector, as on a real board
    with Flash():
        assert sim._records() == [(1, sim.IMG_VALID), (sim.IMG_UNDEFINED, sim.IMG_UNDEFINED)]
        update_ = Writer(sim.Partition("ota_1"), N, DIGESTS["MD5"], "MD5")
        feed(update_, IMAGE, 1024)
        update_.finish()
        assert sim._records() == [(1, sim.IMG_VALID), (2, sim.IMG_NEW)]
