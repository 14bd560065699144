# backoff.py: how long to wait after a failure: from first_ms, doubling up to most_ms, each wait
# lengthened by a random part of up to half of it, so that devices refused together (a server
# restart, a rate limit) do not come back together. reset() after a success. within(): a wait
# with a bound.
import asyncio
from random import getrandbits


async def within(aw, ms):
    # await aw for at most ms (none when ms <= 0): True if it ended in time
    try:
        await asyncio.wait_for_ms(aw, max(0, ms))
        return True
    except asyncio.TimeoutError:
        return False


class Backoff:
    def __init__(self, first_ms, most_ms):
        self.first = first_ms
        self.most = most_ms
        self.ms = 0  # the last wait's base; 0: no failure since the last success

    def next(self):
        self.ms = min(self.ms * 2, self.most) if self.ms else self.first
        return self.ms + (self.ms >> 1) * getrandbits(8) // 256

    def reset(self):
        self.ms = 0
