# download.py: fetch an OTA package from ThingsBoard chunk by chunk (GET /fw|sw/{token}?title&
# version&size&chunk, transport reference §6.1) with `window` requests in flight, and feed the
# bytes in order to a sink (lib/ota's Writer). Imported only while a download runs.
#
# Each request has its own exchange and its own task: an exchange retransmits only while a
# task awaits it. A chunk goes to the sink at its offset as soon as it arrives, so at most
# `window` datagrams are in RAM, and only while they are in flight.
import asyncio

from coap.client import CoapTimeout, Reset
from coap.codec import CONTENT
from thingsboard.errors import check


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
        self._window = max(1, min(window, self._left))
        self._done = asyncio.Event()
        self._error = None
        self.retried = 0

    async def run(self):
        if not self._left:
            return
        client = self.device.client
        if not self._next:  # the first chunk alone: an image that is no app goes no further
            ex = client.exchange()
            await self._fetch(ex, 0)
            self._next = 1
            self._write(ex, 0)
            if not self._left:
                return
        tasks = [asyncio.create_task(self._worker(client.exchange())) for _ in range(self._window)]
        try:
            await self._done.wait()
        finally:  # done, failed, or the download itself was cancelled
            for t in tasks:
                t.cancel()
        if self._error:
            raise self._error

    async def _worker(self, ex):
        try:
            while self._next < self.count:
                c = self._next
                self._next += 1
                await self._fetch(ex, c)
                self._write(ex, c)
        except Exception as e:
            if self._error is None:
                self._error = e
            self._done.set()

    async def _fetch(self, ex, c):
        p = self.pkg
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
                    raise DownloadError("chunk %d: %s, %d tries" % (c, e, tries), True) from None
                self.retried += 1
        check(ex, CONTENT)  # 4.00: the assignment changed; 4.04: removed
        want = min(self.size, p["size"] - c * self.size)
        got = len(ex.payload())
        if got != want:
            raise DownloadError("chunk %d has %d bytes, expected %d" % (c, got, want))

    def _write(self, ex, c):
        before = self.sink.flashed
        self.sink.write(ex.payload(), c * self.size)
        if self.sink.flashed != before:
            self.saved(self.sink.flashed)
        self._left -= 1
        if not self._left:
            self._done.set()
