# firmware/spool.py under CPython against a model (a deque), with a fixed seed: random appends,
# pops, reboots and power cuts in the middle of an append. The spool always holds exactly the
# model's records (less the one being written at a power cut) and dropped count, and its files
# stay within capacity + one segment + the head file. The unix port reads what CPython wrote.
import os
import random
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mpenv import MICROPYTHON, micropython_env  # noqa: E402

from firmware.spool import Spool  # noqa: E402

HDR = 6  # bytes stored per record besides its data
BIG = 300


class Model:
    def __init__(self, capacity):
        self.capacity = capacity
        self.q = deque()
        self.dropped = 0

    def append(self, data):
        while sum(HDR + len(r) for r in self.q) + HDR + len(data) > self.capacity:
            self.q.popleft()
            self.dropped += 1
        self.q.append(data)


def disk(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))


def newest(path):
    return os.path.join(path, str(max(int(n) for n in os.listdir(path) if n.isdigit())))


def drain(s):
    out = []
    while len(s):
        out.append(s.peek())
        s.pop()
    return out


def contents(path, capacity, scratch):
    # all records and the dropped count, read from a copy so the spool itself is untouched
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(path, scratch)
    s = Spool(str(scratch), capacity)
    return drain(s), s.dropped


@pytest.mark.parametrize("capacity", [1024, 4096, 16384])
def test_random_operations_match_a_model(tmp_path, capacity):
    rng = random.Random(capacity)
    path = str(tmp_path / "spool")
    bound = capacity + max(capacity // 4, HDR + BIG) + 16
    s = Spool(path, capacity)
    m = Model(capacity)
    cuts = reboots = drops_seen = 0
    for step in range(2000):
        online = step // 250 % 2  # offline for a while, then back: fills up, then drains
        op = rng.random()
        if op < 0.55 or op < 0.85 and not online:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, BIG)))
            s.append(data)
            m.append(data)
            if op < 0.03:  # power cut during that write: a part of the record reached flash
                tail = newest(path)
                end = os.path.getsize(tail)
                os.truncate(tail, rng.randrange(end - HDR - len(data), end))
                m.q.pop()
                s = Spool(path, capacity)
                cuts += 1
        elif op < 0.85:
            n = 1 if op < 0.80 else rng.randint(2, 6)  # a batch the server took at once
            s.pop(n)
            for _ in range(min(n, len(m.q))):
                m.q.popleft()
        elif op < 0.89:
            s = Spool(path, capacity)
            reboots += 1
            assert contents(path, capacity, tmp_path / "copy") == (list(m.q), m.dropped), step
        elif op < 0.95:
            n = rng.randint(0, m.dropped)
            s.clear_dropped(n)
            drops_seen += m.dropped > 0
            m.dropped -= n
        elif op < 0.953:
            s.clear()
            m.q.clear()
        assert (len(s), s.peek(), s.dropped) == (len(m.q), m.q[0] if m.q else None, m.dropped)
        if step % 10 == 0 and m.q:  # the oldest that fit a limit, and always the oldest
            limit = rng.choice([0, 200, 1024])
            want, size = [m.q[0]], len(m.q[0])
            for r in list(m.q)[1:]:
                size += len(r)
                if size > limit:
                    break
                want.append(r)
            assert s.head(limit) == want, step
        assert disk(path) <= bound, step
    assert cuts > 20 and reboots > 40 and drops_seen > 20  # the run met every case
    assert drain(Spool(path, capacity)) == list(m.q)


def test_unix_port_reads_what_cpython_wrote(tmp_path):
    path = str(tmp_path / "spool")
    s = Spool(path, 2048)
    recs = [b'{"n":%d,"v":"%s"}' % (i, b"x" * (i * 7)) for i in range(40)]
    for r in recs:
        s.append(r)
    s.pop()
    code = (
        "from firmware.spool import Spool\n"
        "s = Spool(%r, 2048)\n"
        "print(s.dropped)\n"
        "while len(s):\n"
        "    print(s.peek().decode())\n"
        "    s.pop()\n" % path
    )
    p = subprocess.run(
        [str(MICROPYTHON), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=micropython_env(ROOT),
        check=True,
    )
    lines = p.stdout.split()
    assert int(lines[0]) == s.dropped > 0
    assert [ln.encode() for ln in lines[1:]] == recs[s.dropped + 1 :]
    assert len(Spool(path, 2048)) == 0  # the unix port's pops reached the same files


def test_unix_port_drains_a_spool_bigger_than_its_heap(tmp_path):
    # records are read one at a time: 64 KB of them pass through a 40 KB heap
    path = str(tmp_path / "spool")
    s = Spool(path, 65536)
    for i in range(240):
        s.append(b'{"i":%d,"v":"%s"}' % (i, b"x" * 280))
    assert s.dropped  # full
    code = (
        "from firmware.spool import Spool\n"
        "s = Spool(%r, 65536)\n"
        "n = 0\n"
        "while len(s):\n"
        "    n += len(s.peek())\n"
        "    s.pop()\n"
        "print(n)\n" % path
    )
    p = subprocess.run(
        [str(MICROPYTHON), "-X", "heapsize=40k", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=micropython_env(ROOT),
    )
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) > 60000
