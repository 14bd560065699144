# download.py: fetch an OTA package from ThingsBoard chunk by chunk (GET /fw|sw/{token}?title&
# version&size&chunk, transport reference §6.1) with `window` requests in flight, and feed the
# bytes in order to a sink (lib/ota's Writer). Imported only while a download runs.
#
# Each request has its own exchange and its own task: an exchange retransmits only while a
# task awaits it. A chunk goes to the sink at its offset as it arrives, in the client reader's
# turn (the exchange's on_response), and its datagram goes with it: however the tasks take
# turns, one chunk at a time is in RAM, whatever the window.
import asyncio

from coap.client import CoapTimeout, Reset
from coap.codec import CONTENT
from thingsboard.device import check


class DownloadError(Exception):
    def __init__(self, msg, retry=False):
        super().__init__(msg)
        self.retry = retry  # the network failed, not the package: worth resuming later


class Download:
    def __init__(self, device, kind, pkg, sink, chunk_size, window, timeout_ms, retries, saved):
        # pkg: {"title", "version", "size"}; sink: .received (bytes it already has: resume),
        # .write(data, at) in any order, .flashed; saved(flashed) is called as the safe part
        # grows. A resume asks for the chunk holding the first missing byte whole.
        self.device = device
        self.kind = kind
        self.pkg = pkg
        self.sink = sink
        self.size = chunk_size
        self.timeout = timeout_ms
        self.retries = retries
        self.saved = saved
        self.count = (pkg["size"] + chunk_size - 1) // chunk_size  # never ask past the end
        self._next = sink.received // chunk_size  # the chunk to request next
        self._left = self.count - self._next  # chunks not written yet
        self.window = max(1, min(window, self._left))
        self._done = asyncio.Event()
        self._error = None
        self._landed = set()  # chunks written as they arrived, their tasks not told yet
        self.retried = 0

    async def run(self):
        if not self._left:
            return
        client = self.device.client
        if not self._next:  # the first chunk alone: an image that is no app goes no further
            await self._worker(client.exchange(), 1)
            if self._error:
                raise self._error
            if not self._left:
                return
        tasks = [asyncio.create_task(self._worker(client.exchange())) for _ in range(self.window)]
        try:
            await self._done.wait()
        finally:  # done, failed, or the download itself was cancelled
            for t in tasks:
                t.cancel()
        if self._error:
            raise self._error

    async def _worker(self, ex, end=None):
        # the next chunk not asked for yet, each retried, until chunk `end` (or the last): one
        # coroutine per request in flight, and nothing more, as each holds its frame in RAM
        end = end or self.count
        p = self.pkg
        c = None  # the chunk asked for: the exchange's answers are only ever its own (tokens)
        ex.on_response = lambda ex: self._arrived(ex, c)
        try:
            while self._next < end:
                c = self._next
                self._next += 1
                tries = 0
                while True:
                    try:
                        await self.device.request_chunk(
                            ex, self.kind, p["title"], p["version"], self.size, c, self.timeout
                        )
                        break
                    except (CoapTimeout, Reset, OSError) as e:
                        tries += 1
                        if tries > self.retries:
                            msg = "chunk %d: %s, %d tries" % (c, e, tries)
                            raise DownloadError(msg, True) from None
                        self.retried += 1
                self._landed_or_raise(ex, c)
        except Exception as e:
            self._fail(e)

    def _landed_or_raise(self, ex, c):
        # after chunk c's exchange: it is in the sink, or the sink's refusal (a failed
        # download already) or what the answer lacks is raised
        if c in self._landed:
            self._landed.remove(c)
            return
        if self._error:
            raise self._error
        check(ex, CONTENT)  # 4.00: the assignment changed; 4.04: removed
        got = len(ex.payload())
        raise DownloadError("chunk %d has %d bytes, expected %d" % (c, got, self._want(c)))

    def _fail(self, e):
        if self._error is None:
            self._error = e
        self._done.set()

    def _want(self, c):
        return min(self.size, self.pkg["size"] - c * self.size)

    def _arrived(self, ex, c):
        # the answer to chunk c, in the reader's turn: a right one goes to the sink now and
        # lets its datagram go; anything else waits for _landed_or_raise to say what is wrong
        if ex.code != CONTENT or len(ex.payload()) != self._want(c):
            return
        try:
            self._write(ex.payload(), c)
            self._landed.add(c)
        except Exception as e:  # the sink's refusal ends the download, not the reader
            self._fail(e)
        ex.release()

    def _write(self, data, c):
        before = self.sink.flashed
        self.sink.write(data, c * self.size)
        if self.sink.flashed != before:
            self.saved(self.sink.flashed)
        self._left -= 1
        if not self._left:
            self._done.set()
