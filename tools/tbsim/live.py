# live.py: what tbsim's page sees, pushed as server-sent events: a snapshot when the page
# connects, then every change the store, the core and the fault knobs report. The changes of
# one loop turn go out as one message; with nobody watching, a change costs one comparison.
# Runs on tbsim's loop; the fault knobs, which scripts also turn from other threads, are
# handed over to it.
import asyncio
import json
import time

from .store import SCOPES

KEEPALIVE = 15.0  # s between comments on a quiet stream, so a gone page is noticed
BACKLOG = 2000  # messages a page may fall behind before it is cut off (it reconnects)
RETRY_MS = 1000  # EventSource's reconnection delay


def _ms():
    return round(time.time() * 1000, 1)


def message(events):
    return ("data: %s\n\n" % json.dumps(events, separators=(",", ":"))).encode()


class Live:
    def __init__(self, store, core, faults, admin, inactivity_timeout):
        self.store, self.core, self.faults, self.admin = store, core, faults, admin
        self.inactivity_timeout = inactivity_timeout
        self.clients = set()  # one queue of messages per connected page
        self.pending = []  # events of this loop turn
        self.loop = asyncio.get_running_loop()
        store.changed = self.changed
        faults.changed = self._faults

    # what a page is told

    def device(self, dev):
        did = dev["id"]
        out = self.admin.device_json(dev)
        out["token"] = (self.store.credentials(did) or {}).get("credentials_id")
        out["lastActivity"] = self.core.activity.get(did)
        out["powerMode"] = self.core.power.mode(did)  # the device's, else its profile's
        return out

    def device_state(self, dev):
        # the device with its latest telemetry {key: [ts, value]} and attributes {scope: {..}}
        did = dev["id"]
        out = self.device(dev)
        latest = self.store.latest(did, self.store.telemetry_keys(did))
        out["latest"] = {k: [p[0]["ts"], p[0]["value"]] for k, p in latest.items()}
        out["attributes"] = {
            s: {a["key"]: [a["value"], a["last_update_ts"]] for a in self.store.attributes(did, s)}
            for s in SCOPES
        }
        return out

    def snapshot(self):
        return {
            "type": "snapshot",
            "t": _ms(),
            "inactivityTimeout": self.inactivity_timeout * 1000,
            "devices": [self.device_state(d) for d in self.store.devices()],
            "packages": self._packages(),
            "profiles": self._profiles(),
            "faults": self.faults.snapshot(),
        }

    def _packages(self):
        return [self.admin.ota_json(p) for p in self.store.ota_list()]

    def _profiles(self):
        return [self.admin.profile_json(p) for p in self.store.profiles()]

    # changes

    def changed(self, kind, did, **details):
        if not self.clients:
            return
        ev = {"type": kind, "t": _ms()}
        if did is not None:
            ev["device"] = did
        if kind == "device":
            dev = self.store.device(did)
            if dev is None:
                return
            ev["state"] = self.device(dev)
        elif kind == "telemetry":
            ev["entries"] = details["entries"]
        elif kind == "attributes" or kind == "activity":
            ev.update(details)
        elif kind == "rpc":
            ev["rpc"] = self.store.rpc(details["row"])
            if ev["rpc"] is None:
                return
            ev["device"] = ev["rpc"]["device_id"]
        elif kind == "rpc_deleted":
            ev["row"] = details["row"]
        elif kind == "packages":
            ev["packages"] = self._packages()
        elif kind == "profiles":
            ev["profiles"] = self._profiles()
        self._publish(ev)

    def _faults(self, snapshot):
        if self.clients:
            self._publish({"type": "faults", "t": _ms(), "faults": snapshot})

    def _publish(self, ev):
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if not here:
            self.loop.call_soon_threadsafe(self._publish, ev)
            return
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(ev)

    def _flush(self):
        data, self.pending = message(self.pending), []
        for q in list(self.clients):
            if q.qsize() > BACKLOG:  # a page that stopped reading: cut it off
                self.clients.discard(q)
                q.put_nowait(None)
            else:
                q.put_nowait(data)

    # the stream of one page

    async def stream(self):
        q = asyncio.Queue()
        self.clients.add(q)
        try:
            yield b"retry: %d\n" % RETRY_MS + message([self.snapshot()])
            while True:
                try:
                    data = await asyncio.wait_for(q.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    data = b": keep-alive\n\n"
                if data is None:
                    return
                yield data
        finally:
            self.clients.discard(q)

    def close(self):
        # every stream ends (tbsim stops)
        for q in self.clients:
            q.put_nowait(None)
        self.clients.clear()
