# faults.py: seeded network faults between the UDP socket and the CoAP layer.
# Each direction ("in" = device to server, "out" = server to device) has its own knobs and
# its own random streams, so one knob's draws never shift another's and runs repeat exactly.
# An outage drops everything both ways, whatever the knobs say, and draws nothing.
import random

KNOBS = ("loss", "duplicate", "delay", "jitter", "reorder")
# How long a datagram held back for reordering waits for a later one to overtake it.
REORDER_HOLD = 0.2


class Direction:
    def __init__(self, name, seed):
        self.name = name
        self.loss = self.duplicate = self.delay = self.jitter = self.reorder = 0.0
        self.rng = {k: random.Random("%s/%s/%s" % (seed, name, k)) for k in KNOBS}
        self.counters = dict.fromkeys(
            ("datagrams", "dropped", "duplicated", "delayed", "reordered"), 0
        )
        self.held = None  # (handle, deliver, data) waiting to be overtaken
        self.outage = False

    def settings(self):
        return {k: getattr(self, k) for k in KNOBS}

    def configure(self, values):
        for key, value in values.items():
            if key not in KNOBS:
                raise ValueError("unknown fault knob %r" % key)
            value = float(value)
            if value < 0 or (key in ("loss", "duplicate", "reorder") and value > 1):
                raise ValueError("%s out of range: %r" % (key, value))
            setattr(self, key, value)

    def _hit(self, knob):
        p = getattr(self, knob)
        # draw even when p is 0, so turning one knob on does not change another's sequence
        return self.rng[knob].random() < p

    def pass_datagram(self, loop, deliver, data):
        # Hand data to deliver(data) now, later, twice or never, as the knobs say.
        c = self.counters
        c["datagrams"] += 1
        if self.outage:
            c["dropped"] += 1
            return
        if self._hit("loss"):
            c["dropped"] += 1
            return
        copies = 2 if self._hit("duplicate") else 1
        c["duplicated"] += copies - 1
        jitter = self.rng["jitter"].uniform(0, self.jitter) if self.jitter else 0.0
        wait = self.delay + jitter
        reorder = self._hit("reorder")
        for _ in range(copies):
            if reorder and self.held is None:
                c["reordered"] += 1
                handle = loop.call_later(REORDER_HOLD + wait, self._release)
                self.held = (handle, deliver, data)
                continue
            if wait > 0:
                c["delayed"] += 1
                loop.call_later(wait, self._overtake, deliver, data)
            else:
                self._overtake(deliver, data)

    def _overtake(self, deliver, data):
        deliver(data)
        self._release()

    def _release(self):
        # Send the held datagram after the one that overtook it (or when its hold ran out).
        if self.held is not None:
            handle, deliver, data = self.held
            self.held = None
            handle.cancel()
            deliver(data)


class Faults:
    def __init__(self, seed=0):
        self.seed = seed
        self.changed = None  # called with the snapshot after every change (tbsim's page)
        self.reset(seed)

    def reset(self, seed=None):
        # New random streams and zeroed counters; settings are kept.
        if seed is not None:
            self.seed = seed
        old = getattr(self, "dirs", None)
        self.dirs = {d: Direction(d, self.seed) for d in ("in", "out")}
        if old:
            for d in self.dirs:
                self.dirs[d].configure(old[d].settings())
                self.dirs[d].outage = old[d].outage
        self.observe_drops = 0
        self.announce()

    def announce(self):
        if self.changed:
            self.changed(self.snapshot())

    def configure(self, config):
        # {"seed": n, "in": {knob: value}, "out": {...}}; a bare knob sets both directions;
        # "outage": true cuts the network both ways until "outage": false.
        config = dict(config)
        if "seed" in config:
            self.reset(int(config.pop("seed")))
        for key, value in config.items():
            if key == "outage":
                if not isinstance(value, bool):
                    raise ValueError("outage must be true or false, not %r" % (value,))
                for d in self.dirs.values():
                    d.outage = value
            elif key in self.dirs:
                self.dirs[key].configure(value)
            elif key in KNOBS:
                for d in self.dirs.values():
                    d.configure({key: value})
            else:
                raise ValueError("unknown fault setting %r" % key)
        self.announce()

    def snapshot(self):
        out = {"seed": self.seed, "observe_drops": self.observe_drops}
        out["outage"] = self.dirs["in"].outage
        for name, d in self.dirs.items():
            out[name] = dict(d.settings(), counters=dict(d.counters))
        return out
