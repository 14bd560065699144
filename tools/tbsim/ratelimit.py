"""ThingsBoard's transport rate limits: a limit is "capacity:seconds" pairs, e.g. "10:1,300:60"
(at most 10 messages in any second and 300 in any minute), as thingsboard.yml's
`transport.rate_limits.device` and `.tenant` (and a tenant profile's transportDeviceMsgRateLimit
and transportTenantMsgRateLimit) give them. ThingsBoard keeps one token bucket per pair
(Bucket4j, refilled evenly over its period: common/.../TbRateLimits.java); a message takes one
token from every bucket of its device and of its tenant, and one that finds a bucket empty is
answered 5.00 (transport/.../DefaultTransportService.java, checkLimits). tbsim has one tenant.
"""

import time


class RateLimitError(ValueError):
    pass


def parse(text):
    # "10:1,300:60" -> [(10, 1.0), (300, 60.0)]; "" or None: no limit
    pairs = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        try:
            capacity, seconds = part.split(":")
            pair = (int(capacity), float(seconds))
        except ValueError:
            raise RateLimitError("rate limit %r: want capacity:seconds[,...]" % text) from None
        if pair[0] < 1 or pair[1] <= 0:
            raise RateLimitError("rate limit %r: capacity and seconds must be positive" % text)
        pairs.append(pair)
    return pairs


class Limit:
    """The buckets of one limit, full at the start."""

    def __init__(self, text, clock=time.monotonic):
        self.text = text or ""
        self.clock = clock
        self._buckets = [[c, s, float(c), clock()] for c, s in parse(text)]

    def _refill(self, now):
        for b in self._buckets:
            capacity, seconds, tokens, then = b
            b[2] = min(capacity, tokens + (now - then) * capacity / seconds)
            b[3] = now

    def allows(self):
        # is there a token in every bucket?
        self._refill(self.clock())
        return all(b[2] >= 1 for b in self._buckets)

    def take(self):
        for b in self._buckets:
            b[2] -= 1


class RateLimits:
    """The tenant's limit and one per device; check(device_id) takes a message's tokens, or
    says no (and takes none)."""

    def __init__(self, device=None, tenant=None, clock=time.monotonic):
        parse(device), parse(tenant)  # refuse a bad one at once
        self.device, self.tenant, self.clock = device or "", tenant or "", clock
        self._tenant = Limit(tenant, clock)
        self._devices = {}
        self.refused = 0

    def check(self, device_id):
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = Limit(self.device, self.clock)
        if self._tenant.allows() and dev.allows():
            self._tenant.take()
            dev.take()
            return True
        self.refused += 1
        return False

    def snapshot(self):
        return {"device": self.device, "tenant": self.tenant, "refused": self.refused}
