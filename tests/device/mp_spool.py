# The telemetry spool on the unix port: order kept across reboots, drop-oldest when full with a
# persistent count, a torn or corrupt last record costs that record only, a power cut at any
# block write of littlefs loses nothing else, and flash use stays bounded over many append/pop
# cycles. Files live in /tmp/mp_spool_<random>, removed after.
import os
import sys
from binascii import hexlify

import vfs

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

from fakes import RAMDisk  # noqa: E402

from firmware.spool import Spool  # noqa: E402

CAP = 1024
BOUND = CAP + CAP // 4 + 16  # capacity + one segment + the head file
FILES = 2 * 4 + 3  # two neighbouring segments hold more than one segment's worth, + head


def rec(i, n=40):
    # a distinct record of about n bytes, like a small JSON message
    s = '{"i":%d,"t":"' % i
    return (s + "x" * max(0, n - len(s) - 2) + '"}').encode()


def tmpdir():
    d = "/tmp/mp_spool_" + hexlify(os.urandom(6)).decode()
    os.mkdir(d)
    return d


def rmtree(d):
    for name in os.listdir(d):
        p = d + "/" + name
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(d)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def drain(s):
    out = []
    while len(s):
        out.append(s.peek())
        s.pop()
    return out


def disk(path):
    return sum(os.stat(path + "/" + n)[6] for n in os.listdir(path))


def newest(path):
    return path + "/" + str(max(int(n) for n in os.listdir(path) if n.isdigit()))


def with_dir(fn):
    def run():
        d = tmpdir()
        try:
            fn(d + "/spool")
        finally:
            rmtree(d)

    return run


@with_dir
def test_order_kept(path):
    s = Spool(path, CAP)
    assert s.peek() is None and len(s) == 0
    s.pop()  # nothing to pop: no error
    recs = [rec(i, 20 + 3 * i) for i in range(15)]
    for r in recs:
        s.append(r)
    assert len(s) == s.count == 15 and s.dropped == 0
    assert s.peek() == recs[0] and s.peek() == recs[0]  # peek does not consume
    assert drain(s) == recs
    assert s.peek() is None


@with_dir
def test_reopen_keeps_order_and_dropped(path):
    s = Spool(path, CAP)
    recs = [rec(i, 100) for i in range(12)]
    for r in recs:
        s.append(r)
    assert s.dropped == 3
    s = Spool(path, CAP)
    assert (len(s), s.dropped) == (9, 3)
    s.clear_dropped(2)  # 2 reported; one more was dropped since: it stays counted
    assert Spool(path, CAP).dropped == 1
    s.clear_dropped()
    s = Spool(path, CAP)
    assert s.dropped == 0
    assert drain(s) == recs[3:]


@with_dir
def test_full_drops_oldest_and_counts(path):
    s = Spool(path, CAP)
    recs = [rec(i, 100) for i in range(30)]  # 106 bytes stored each: 9 fit in 1024
    for i, r in enumerate(recs):
        s.append(r)
        assert len(s) == min(i + 1, 9) and s.dropped == max(0, i + 1 - 9)
    assert drain(s) == recs[-9:]
    s.append(rec(99, 1000))  # one record as big as the capacity allows
    assert s.dropped == 21 and drain(s) == [rec(99, 1000)]
    try:
        s.append(rec(100, CAP))
    except ValueError:
        pass
    else:
        raise AssertionError("a record bigger than the spool was taken")
    assert len(s) == 0 and s.dropped == 21


def snapshot(path):
    return {n: read(path + "/" + n) for n in os.listdir(path)}


def restore(path, snap):
    for n in os.listdir(path):
        os.remove(path + "/" + n)
    for n, data in snap.items():
        write(path + "/" + n, data)


def five(path):
    # five records; the newest segment's bytes and where its last record starts
    s = Spool(path, CAP)
    recs = [rec(i, 30 + i) for i in range(5)]
    for r in recs:
        s.append(r)
    s.pop()  # the head is mid-segment
    tail = newest(path)
    good = read(tail)
    return recs[1:], tail, good, len(good) - 6 - len(recs[-1])


@with_dir
def test_torn_tail_at_every_offset(path):
    recs, tail, good, start = five(path)
    snap = snapshot(path)
    for cut in range(start, len(good)):
        write(tail, good[:cut])
        s = Spool(path, CAP)
        assert len(s) == 3, cut
        assert len(read(tail)) == start, cut  # the torn bytes are gone
        s.append(b"after")
        assert drain(Spool(path, CAP)) == recs[:3] + [b"after"], cut
        restore(path, snap)


@with_dir
def test_corrupt_byte_in_last_record(path):
    recs, tail, good, start = five(path)
    snap = snapshot(path)
    for i in range(start, len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x10
        write(tail, bad)
        assert drain(Spool(path, CAP)) == recs[:3], i
        restore(path, snap)


@with_dir
def test_pop_after_reopen(path):
    s = Spool(path, CAP)
    recs = [rec(i, 60) for i in range(12)]
    for r in recs[:10]:
        s.append(r)
    for _ in range(3):
        s.pop()
    s = Spool(path, CAP)
    assert len(s) == 7 and s.peek() == recs[3]
    s.pop()
    s.pop()
    s = Spool(path, CAP)
    assert s.peek() == recs[5]
    s.append(recs[10])
    s.append(recs[11])
    assert drain(Spool(path, CAP)) == recs[5:]
    assert len(Spool(path, CAP)) == 0


@with_dir
def test_clear_empties_and_keeps_dropped(path):
    s = Spool(path, CAP)
    for i in range(20):
        s.append(rec(i, 100))
    s.clear()
    assert len(s) == 0 and s.peek() is None
    s = Spool(path, CAP)
    assert len(s) == 0 and s.dropped == 11
    assert sorted(os.listdir(path)) == ["head"]
    s.append(b"x")
    assert drain(Spool(path, CAP)) == [b"x"]


@with_dir
def test_leftovers_of_a_power_cut_are_ignored(path):
    s = Spool(path, CAP)
    recs = [rec(i, 100) for i in range(8)]
    for r in recs:
        s.append(r)
    for _ in range(4):
        s.pop()
    first = min(int(n) for n in os.listdir(path) if n.isdigit())
    assert first > 0  # a segment was read to its end and deleted
    write(path + "/0", b"a read segment whose removal was cut short")
    write(path + "/head.tmp", b"torn")
    s = Spool(path, CAP)
    assert "0" not in os.listdir(path)
    assert drain(s) == recs[4:]


def ten_appended_five_sent(path):
    # -> the records; the first segment is read and gone
    s = Spool(path, CAP)
    recs = [rec(i, 50) for i in range(10)]  # 56 bytes stored each: 4 to a segment
    for r in recs:
        s.append(r)
    for _ in range(5):
        s.pop()
    assert "0" not in os.listdir(path)
    return recs


@with_dir
def test_corrupt_head_loses_nothing(path):
    recs = ten_appended_five_sent(path)
    write(path + "/head", b"\x00" * 16)
    assert drain(Spool(path, CAP)) == recs[4:]  # one sent twice rather than any lost


@with_dir
def test_head_with_a_flipped_bit_loses_nothing(path):
    # a head that reads back wrong (its offset one off, mid-record) is not trusted: the spool
    # starts at the oldest segment instead of cutting it at the bogus offset
    recs = ten_appended_five_sent(path)
    head = bytearray(read(path + "/head"))
    head[4] ^= 1
    write(path + "/head", head)
    assert drain(Spool(path, CAP)) == recs[4:]


@with_dir
def test_many_cycles_stay_bounded(path):
    s = Spool(path, CAP)
    i = 0
    for cycle in range(600):
        # online: one in, one out, a small backlog; every 100th cycle a reboot
        s.append(rec(i, 20 + i % 200))
        i += 1
        if len(s) > 3:
            s.pop()
        if cycle % 100 == 99:
            s = Spool(path, CAP)
        assert disk(path) <= BOUND and len(os.listdir(path)) <= FILES, cycle
    for _ in range(100):  # offline: full, dropping
        s.append(rec(i, 20 + i % 200))
        i += 1
        assert disk(path) <= BOUND and len(os.listdir(path)) <= FILES
    assert s.dropped > 0
    while len(s):
        s.pop()
    assert disk(path) <= CAP // 4 + 16  # one segment and the head file


def _after_power_cut(snap):
    vfs.mount(vfs.VfsLfs2(RAMDisk(bytearray(snap))), "/spsnap")
    try:
        s = Spool("/spsnap/spool", CAP)
        return drain(s), s.dropped
    finally:
        vfs.umount("/spsnap")


def test_power_cut_at_every_block_write_on_littlefs():
    disk = RAMDisk(bytearray(512 * 48))
    vfs.VfsLfs2.mkfs(disk)
    vfs.mount(vfs.VfsLfs2(disk), "/spram")
    try:
        s = Spool("/spram/spool", CAP)
        recs = [rec(i, 100) for i in range(11)]
        for r in recs[:9]:
            s.append(r)  # full: the next append drops the oldest
        # each step: the operation, then what a power cut during it may leave (before .. after)
        steps = (
            (lambda: s.append(recs[9]), (recs[:9], 0), (recs[1:9], 1), (recs[1:10], 1)),
            (s.pop, (recs[1:10], 1), (recs[2:10], 1)),
            (lambda: s.append(recs[10]), (recs[2:10], 1), (recs[2:11], 1)),
            (s.clear_dropped, (recs[2:11], 1), (recs[2:11], 0)),
        )
        for step in steps:
            disk.snaps = []
            step[0]()
            snaps, disk.snaps = disk.snaps, None
            assert len(snaps) > 1
            for i, snap in enumerate(snaps):
                assert _after_power_cut(snap) in step[1:], i
            assert _after_power_cut(snaps[-1]) == step[-1]
    finally:
        vfs.umount("/spram")
