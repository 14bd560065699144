# spool.py: a bounded FIFO of telemetry records on flash that survives reboots and power cuts.
# Runs under MicroPython and CPython.
#
# The spool is a folder:
#   0, 1, 2 ...  segments, only ever appended to. A record is <len:u16><crc:u32><data>, crc the
#                CRC-32 of the two length bytes and the data. A new segment starts when the
#                newest would pass capacity / 4, so reading never rewrites data: a segment read
#                to its end is deleted.
#   head         <first:u32><offset:u32><dropped:u32><crc:u32>: the oldest unread record and
#                the dropped count, replaced (tmp + rename, atomic on littlefs) on each pop.
# Opening scans the unread records once, one at a time, to count them, and cuts a segment at
# its first bad record: a power cut mid-append loses that record only. A power cut between the
# server's ACK and the head update sends one record twice (with a timestamp it is stored once).
# When full, the oldest records are dropped one by one and counted. Capacity is the bytes of
# unread records (headers included); the files take at most capacity + one segment + 16.
# Why numbered segments and not two files: with two, a full spool must either drop half its
# records at once or let its files grow to twice the capacity.
import os
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython: tools/soak.py and bench/uplink.py read the spool

    def const(x):
        return x


_HDR = const(6)  # <len:u16><crc:u32>


class Spool:
    def __init__(self, path, capacity):
        self.path = path
        self.capacity = capacity
        self._seg_max = capacity // 4
        self._hdr = bytearray(_HDR)
        self._buf = bytearray(256)  # one record at a time, grown to the largest
        try:
            os.mkdir(path)
        except OSError:
            pass  # already there
        seqs = [int(n) for n in os.listdir(path) if n.isdigit()]
        self._first, self._off, self.dropped = self._load_head() or (min(seqs or [0]), 0, 0)
        self._saved = self._first  # the first segment the head file names
        self._last = max(seqs + [self._first])
        for n in seqs:
            if n < self._first:
                os.remove(self._name(n))  # read, but a power cut came before its removal
        self.count = self._live = self._size = 0
        for n in range(self._first, self._last + 1):
            self._scan(n)
        self._advance()

    def __len__(self):
        return self.count

    def append(self, data):
        size = _HDR + len(data)
        if size > self.capacity or len(data) > 0xFFFF:
            raise ValueError("record too big")
        first, off = self._first, self._off
        while self._live + size > self.capacity:
            self._skip()
            self.dropped += 1
        if self._size and self._size + size > self._seg_max:
            self._last += 1
            self._size = 0
            if not self.count:  # all read: the head moves on and the old segment goes
                self._first, self._off = self._last, 0
        if (first, off) != (self._first, self._off):
            self._commit()
        n = struct.pack("<H", len(data))
        with open(self._name(self._last), "ab") as f:
            f.write(n + struct.pack("<I", crc32(data, crc32(n))))
            f.write(data)
        self._size += size
        self._live += size
        self.count += 1

    def peek(self):
        return self.head(0)[0] if self.count else None

    def head(self, limit):
        # the oldest records, as many as fit limit bytes of data (at least one)
        out = []
        seg, off, left, size = self._first, self._off, self.count, 0
        while left and seg <= self._last:
            try:
                f = open(self._name(seg), "rb")
            except OSError:
                f = None  # created by a roll-over, then a power cut before its first write
            if f:
                with f:
                    f.seek(off)
                    while left:
                        n = self._read(f) - _HDR
                        if n < 0:
                            break
                        size += n
                        if out and size > limit:
                            return out
                        out.append(bytes(memoryview(self._buf)[:n]))
                        left -= 1
            seg, off = seg + 1, 0
        return out

    def pop(self, n=1):
        n = min(n, self.count)
        if n:
            for _ in range(n):
                self._skip()
            self._commit()

    def clear(self):
        self._first = self._last = self._last + 1
        self._off = self._size = self.count = self._live = 0
        self._commit()

    def retire(self):
        # an empty spool with no count to report leaves no files (True), so the next boot
        # need not open it
        if self.count or self.dropped:
            return False
        for n in os.listdir(self.path):
            os.remove(self._name(n))
        return True

    def clear_dropped(self, n=None):
        # n: the count that was reported; records dropped since then stay counted
        self.dropped = 0 if n is None else max(0, self.dropped - n)
        self._commit()

    def _name(self, n):
        return "%s/%s" % (self.path, n)

    def _load_head(self):
        try:
            with open(self._name("head"), "rb") as f:
                b = f.read(16)
        except OSError:
            return None
        if len(b) == 16 and struct.unpack_from("<I", b, 12)[0] == crc32(b[:12]):
            return struct.unpack_from("<III", b)
        return None  # torn or corrupt: start from the oldest segment (sends twice, loses none)

    def _commit(self):
        # persist the head, then delete the segments it has left behind
        b = struct.pack("<III", self._first, self._off, self.dropped)
        tmp = self._name("head.tmp")
        with open(tmp, "wb") as f:
            f.write(b + struct.pack("<I", crc32(b)))
        os.rename(tmp, self._name("head"))
        for n in range(self._saved, self._first):
            try:
                os.remove(self._name(n))
            except OSError:
                pass  # never written
        self._saved = self._first

    def _read(self, f):
        # size of the record at f's position (its data into self._buf), 0 at the end or if bad
        h = self._hdr
        if f.readinto(h) != _HDR:
            return 0
        n, crc = struct.unpack("<HI", h)
        if n > len(self._buf):
            self._buf = bytearray(n)
        mv = memoryview(self._buf)[:n]
        if f.readinto(mv) != n or crc32(mv, crc32(h[:2])) != crc:
            return 0
        return _HDR + n

    def _scan(self, seg):
        off = self._off if seg == self._first else 0
        try:
            f = open(self._name(seg), "rb")
        except OSError:
            return  # created by a roll-over, then a power cut before its first write
        with f:
            f.seek(off)
            while True:
                n = self._read(f)
                if not n:
                    break
                off += n
                self.count += 1
                self._live += n
            end = f.seek(0, 2)
        if off < end:
            self._cut(seg, off)
        if seg == self._last:
            self._size = off

    def _cut(self, seg, size):
        # keep the first size bytes of a segment (MicroPython files cannot be truncated)
        name = self._name(seg)
        mv = memoryview(self._buf)
        with open(name, "rb") as f, open(name + ".tmp", "wb") as g:
            while size:
                k = f.readinto(mv[: min(size, len(mv))])
                g.write(mv[:k])
                size -= k
        os.rename(name + ".tmp", name)

    def _segsize(self, seg):
        try:
            return os.stat(self._name(seg))[6]
        except OSError:
            return 0

    def _advance(self):
        # move the head off the end of a finished segment
        while self._first < self._last and self._off >= self._segsize(self._first):
            self._first += 1
            self._off = 0

    def _skip(self):
        # move the head past the oldest record
        with open(self._name(self._first), "rb") as f:
            f.seek(self._off)
            n = _HDR + struct.unpack("<H", f.read(2))[0]
        self._off += n
        self._live -= n
        self.count -= 1
        self._advance()
