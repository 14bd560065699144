# firmware/download.py on the unix port against a fake ThingsBoard: each chunk goes to the
# sink at its offset as soon as it is answered (none waits in RAM for the ones before it), and
# the sink's safe part is saved as it grows; never more than `window` requests in flight and
# never one past the end; timeouts retried up to `retries`, then a DownloadError worth
# resuming; a chunk of the wrong length or a 4.00 (the assignment changed) stops it for good; a
# resume starts with the chunk that holds the sink's offset.
import random
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/lib")

import asyncio  # noqa: E402

from coap.client import CoapTimeout  # noqa: E402
from coap.codec import CONTENT  # noqa: E402
from firmware.download import Download, DownloadError  # noqa: E402
from thingsboard.errors import BadRequest  # noqa: E402

random.seed(7)
DATA = bytes(random.getrandbits(8) for _ in range(10000))


class FakeEx:
    # an exchange whose answer comes after a random number of scheduler rounds, handed to
    # on_response as it comes, as coap.client's reader does
    def __init__(self, server):
        self.server = server
        self.code = 0
        self.body = b""
        self.on_response = None

    def payload(self):
        return memoryview(self.body)

    def release(self):
        self.server.released += 1
        self.body = b""


class Server:
    def __init__(self, data=DATA, lose=(), bad_len=None, code=CONTENT):
        self.data = data
        self.lose = list(lose)  # chunks whose first request times out
        self.bad_len = bad_len
        self.code = code
        self.requests = []
        self.answered = []  # chunks in the order their answers came
        self.inflight = 0
        self.peak = 0
        self.released = 0  # answers let go as they came
        self.client = self

    def exchange(self):
        return FakeEx(self)

    async def _answer(self, ex, size, chunk):
        self.requests.append(chunk)
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            for _ in range(random.getrandbits(3)):
                await asyncio.sleep_ms(0)
            if chunk in self.lose:
                self.lose.remove(chunk)
                raise CoapTimeout("no response within 100 ms")
            ex.code = self.code
            ex.body = self.data[chunk * size : chunk * size + size]
            if chunk == self.bad_len:
                ex.body = ex.body[:-1]
            self.answered.append(chunk)
            if ex.on_response:
                ex.on_response(ex)
            return ex
        finally:
            self.inflight -= 1

    def request_chunk(self, ex, kind, title, version, size, chunk, timeout=None):
        assert (kind, title, version, timeout) == ("fw", "t", "v", 100)
        return self._answer(ex, size, chunk)


class Sink:
    # a Writer's interface: pieces land at their offsets in any order; flashed is what has no
    # gap before it, in whole 4 KB blocks
    def __init__(self, received=0):
        self.received = received
        self.got = bytearray(len(DATA))
        self.got[:received] = DATA[:received]
        self.ends = {}  # start -> end of each piece written
        self.order = []  # offsets, in the order of the writes
        self.flashed = received

    def write(self, data, at):
        self.got[at : at + len(data)] = data
        self.ends[at] = at + len(data)
        self.order.append(at)
        end, grown = self.received, True
        while grown:
            grown = False
            for a, e in self.ends.items():
                if a <= end < e:
                    end, grown = e, True
        self.flashed = end // 4096 * 4096


def run(server, sink, size=1000, window=4, retries=2):
    saved = []
    pkg = {"title": "t", "version": "v", "size": len(server.data)}
    d = Download(server, "fw", pkg, sink, size, window, 100, retries, saved.append)
    asyncio.run(d.run())
    return d, saved


def test_each_answer_is_written_at_its_offset_at_once():
    shuffled = 0
    for window, size in ((1, 1000), (4, 1000), (16, 1024), (3, 333)):
        s = Server()
        d, saved = run(s, Sink(), size, window)
        n = (len(DATA) + size - 1) // size
        assert bytes(d.sink.got) == DATA
        assert sorted(s.requests) == list(range(n))  # each once, none past the end
        assert s.peak <= window and (s.peak > 1) == (window > 1), (window, s.peak)
        # written in the order the answers came, not held back for the ones before
        assert d.sink.order == [c * size for c in s.answered]
        assert s.released == n  # each datagram let go as its chunk was written
        shuffled += s.answered != sorted(s.answered)
        assert saved == [4096, 8192]
    assert shuffled  # the fake server did answer out of order


def test_timeouts_are_retried_then_give_up_worth_resuming():
    s = Server(lose=[2, 2, 5])
    d, _ = run(s, Sink())
    assert bytes(d.sink.got) == DATA and d.retried == 3
    s = Server(lose=[3, 3, 3])
    try:
        run(s, Sink(), retries=2)
    except DownloadError as e:
        assert e.retry and "chunk 3" in str(e) and "3 tries" in str(e), str(e)
    else:
        raise AssertionError("no error")


def test_wrong_length_and_refusals_stop_for_good():
    try:
        run(Server(bad_len=4), Sink())
    except DownloadError as e:
        assert not e.retry and str(e) == "chunk 4 has 999 bytes, expected 1000", str(e)
    else:
        raise AssertionError("no error")
    try:
        run(Server(code=128), Sink())  # 4.00: title or version no longer assigned
    except BadRequest:
        pass
    else:
        raise AssertionError("no error")


def test_resume_starts_at_the_sinks_offset():
    s = Server()
    d, _ = run(s, Sink(received=4096), size=1000)
    assert bytes(d.sink.got) == DATA
    assert min(s.requests) == 4  # chunk 4 holds byte 4096: asked whole, the same bytes again
    s = Server()
    d, _ = run(s, Sink(received=len(DATA)), size=1000)
    assert s.requests == []  # everything was there: nothing to ask for


class Refusing(Sink):
    # a sink that refuses the piece at `bad`, as a Writer refuses an image that is no app
    def __init__(self, bad):
        super().__init__()
        self.bad = bad

    def write(self, data, at):
        if at == self.bad:
            raise ValueError("refused at %d" % at)
        Sink.write(self, data, at)


def test_a_chunk_the_sink_refuses_ends_the_download_with_its_reason():
    for bad in (0, 3000):  # the first chunk (asked alone), one from the window
        try:
            run(Server(), Refusing(bad))
        except ValueError as e:
            assert str(e) == "refused at %d" % bad, str(e)
        else:
            raise AssertionError("no error")
