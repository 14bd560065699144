# device.py: a ThingsBoard device over CoAP, with the names of ThingsBoard's SDKs.
# Everything goes through one coap Client, so one UDP socket and one source port: ThingsBoard
# keys observe relations by IP:port. A keeper task holds the two observations (shared
# attributes, server-side RPC) alive: it re-registers after a 2.02, an RST or an error, after
# a silence longer than observe_refresh, and when the firmware says the network came back.
# Payloads go through a payload format: jsonpayload (the default, loaded only then) or a PROTOBUF
# profile's protopayload.ProtoPayload; either way callers give and get plain dicts.

import asyncio
from asyncio import core
from binascii import crc32
from time import ticks_add, ticks_diff

from micropython import const

from coap.client import CoapTimeout, Observation, Reset
from coap.codec import CONTENT, CREATED, GET, NOT_FOUND, POST, URI_PATH, URI_QUERY

from .backoff import Backoff, within

_RPC_MEMORY = const(8)  # recent server RPCs remembered for de-duplication
_FREE = const(2)  # idle exchanges kept for reuse: telemetry and an RPC reply
# what every request from a device gets while the server refuses it, all of them held meanwhile:
# code -> (first wait ms, longest, log line)
_HOLDS = {
    129: (30000, 600000, "the server refuses the access token (4.01): check the credentials"),
    160: (2000, 60000, "the server refuses requests for now (5.00: its rate limits, or busy)"),
}
# where a remembered RPC's reply is: what a repeat of it gets
_SERVING = const(0)  # nothing: the handler runs, its reply will go out
_SENDING = const(1)  # nothing: the reply is in flight
_UNSENT = const(2)  # the reply again: it did not get through
_CONFIRMED = const(3)  # the reply once more: the server took it, maybe after it re-sent the RPC
_AGAIN = const(4)  # nothing: the reply went out again after it was confirmed


class Device:
    rpc_repeat_ms = 60000  # a repeat of a remembered RPC within this long is a duplicate
    # ... and within this long after the server took our reply (it may have re-sent the RPC on
    # a new subscription before it had taken the reply); later it is a new RPC (ThingsBoard's
    # ids start again from 0 when it restarts)
    rpc_late_ms = 2000

    def __init__(self, client, token, observe_refresh=300000, log=None, payload=None):
        self.client = client
        client.on_reopen = self.reconnected  # a new socket: the server sees a new port
        if payload is None:
            from . import jsonpayload as payload
        self.payload = payload
        self.token = token
        self.observe_refresh = observe_refresh
        self.log = log or (lambda *a: None)
        base = [(URI_PATH, b"api"), (URI_PATH, b"v1")]
        if token:  # none with X.509 authentication: the DTLS session tells who we are
            base.append((URI_PATH, token.encode()))
        self._telemetry = base + [(URI_PATH, b"telemetry")]
        self._attributes = base + [(URI_PATH, b"attributes")]
        self._rpc = base + [(URI_PATH, b"rpc")]
        self._base = base
        self._free = []  # idle exchanges, reused; at most _FREE kept (a burst's go)
        self._attr_callbacks = []  # (key or None for all keys, callback)
        self._rpc_handler = None
        # recent RPCs: the same id and notification again within rpc_repeat_ms is ThingsBoard
        # re-sending it (it pushes every pending RPC on each new subscription); it runs once
        # and gets one reply (once more if it came again after the reply was confirmed)
        # [id, crc of the notification, tick (of the reply's confirmation once confirmed),
        #  reply or None, _SERVING ...]
        self._rpc_seen = []
        self.on_rpc_change = None  # called with rpcs() when one changes (a journal on flash)
        self.ready = asyncio.Event()  # set once every observation is registered
        self.rpc_came = asyncio.Event()  # set by each RPC notification
        self._subs = []  # the observations to keep alive
        self._rpc_obs = None
        self.wake = asyncio.Event()
        self._renew_all = False
        self._keeper = None
        # a server that refuses every request (_HOLDS) gets nothing but one try at a time
        self.hold = None  # tick before which nothing is sent, while refused
        self._held_by = None  # the code of that refusal
        self._refused = None  # its Backoff
        self._trying = False  # the one try after a hold is out
        self.stats = {"resubscribe": 0, "rpc_duplicate": 0}

    # --- uplink

    async def _call(self, code, opts, body=b"", ok=(CREATED,), timeout=None, parse=None):
        # parse: the payload format's reader of the reply
        if self._held():  # not sent: what the server said last
            raise _error(self._held_by)
        ex = self._free.pop() if self._free else self.client.exchange()
        try:
            await ex.request(code, opts, body, timeout=timeout)
            self._heard(ex.code)
            check(ex, *ok)
            return parse(ex.payload()) if parse else ex.code
        finally:
            ex.abandon()  # a request that raised before it was awaited (MemoryError) is over
            if len(self._free) < _FREE:
                self._free.append(ex)

    async def send_telemetry(self, data, timeout=None):
        # data: {"k": v}, [{...}, ...] or {"ts": ms, "values": {...}} (or its JSON text)
        await self._call(POST, self._telemetry, self.payload.telemetry(data), timeout=timeout)

    async def send_attributes(self, data, timeout=None):
        await self._call(POST, self._attributes, self.payload.attributes(data), timeout=timeout)

    async def request_attributes(self, client_keys=None, shared_keys=None, timeout=None):
        # -> {"client": {...}, "shared": {...}}; keys absent on the server are simply missing
        opts = list(self._attributes)
        for name, keys in (("clientKeys", client_keys), ("sharedKeys", shared_keys)):
            if keys:
                opts.append((URI_QUERY, "%s=%s" % (name, ",".join(keys))))
        parse = self.payload.attribute_response  # 4.04 (nothing found) has an empty payload
        return await self._call(GET, opts, b"", (CONTENT, NOT_FOUND), timeout, parse)

    async def send_rpc_call(self, method, params=None, timeout=10000):
        # client-side RPC: the server's rule chain answers
        body = self.payload.rpc_call(method, params)
        parse = self.payload.rpc_call_reply
        return await self._call(POST, self._rpc, body, (CONTENT,), timeout, parse)

    async def send_rpc_reply(self, rpc_id, response, timeout=None):
        opts = self._rpc + [(URI_PATH, str(rpc_id))]
        await self._call(POST, opts, self.payload.rpc_reply(response), timeout=timeout)

    async def claim(self, secret_key=None, duration_ms=None, timeout=None):
        body = self.payload.claim(secret_key, duration_ms)
        await self._call(POST, self._base + [(URI_PATH, b"claim")], body, timeout=timeout)

    def request_chunk(self, ex, kind, title, version, size, chunk, timeout=None):
        # GET /fw/{token} (kind "fw") or /sw/{token} chunk N of the assigned package: starts
        # the request on the caller's exchange and returns it to await (OTA keeps several in
        # flight). ThingsBoard answers nothing past the end, so pass a timeout.
        if not self.token:  # ThingsBoard ignores an X.509 session here (issue #13097)
            raise ValueError("OTA needs an access token, also for X.509 devices")
        opts = [(URI_PATH, kind), (URI_PATH, self.token)]
        # "%s=%s" and the keys are names every board has already ("title=" would be one more)
        for q in (("title", title), ("version", version), ("size", size), ("chunk", chunk)):
            opts.append((URI_QUERY, "%s=%s" % q))
        return ex.request(GET, opts, timeout=timeout)

    # --- downlink

    def subscribe_to_attribute(self, key, callback):
        # callback(key, value) on every change of key; value None when it was deleted
        self._attr_callbacks.append((key, callback))

    def subscribe_to_all_attributes(self, callback):
        # callback(data): the flat notification, {"deleted": [...]} included
        self._attr_callbacks.append((None, callback))

    def set_server_side_rpc_request_handler(self, handler):
        # handler(method, params) -> result, or an awaitable of it; it becomes the reply body
        # (a dict as it is, anything else as {"result": value}). An exception becomes
        # {"error": "<its message>"}, so raise ValueError("pin 5 is not allowed") and the like.
        self._rpc_handler = handler

    def start(self):
        if self._attr_callbacks:
            self._subs.append(Observation(self.client, self._attributes, self._on_attributes))
        if self._rpc_handler:
            self._rpc_obs = Observation(self.client, self._rpc, self._on_rpc)
            self._subs.append(self._rpc_obs)
        self.client.start()
        self._keeper = asyncio.create_task(self._keep())

    def reconnected(self):
        # the network came back (maybe with a new address): renew every observation now
        self._renew_all = True
        self.wake.set()

    def unsubscribe(self):
        # end the observations with the server and stop (a board going to sleep: the server
        # must not send it anything meanwhile). Nothing is waited for: ThingsBoard only ACKs a
        # deregistration, and only after 500 ms, so they go as NON
        for obs in self._subs:
            if obs.active:
                obs.cancel(False)
        self.stop()

    def stop(self):
        if self._keeper:
            self._keeper.cancel()
            self._keeper = None
        for obs in self._subs:
            obs.abandon()

    # --- refusals that hold everything

    def _held(self):
        # True while the server refuses us (_HOLDS) and it is not time to try again; the first
        # caller after that time makes the one try, and holds the others off meanwhile
        h = self.hold
        if h is None:
            return False
        now = core.ticks()
        if ticks_diff(h, now) > 0:
            return True
        self.hold = ticks_add(now, 30000)
        self._trying = True
        return False

    def _heard(self, code):
        # a response: a refusal of every request from this device (_HOLDS) holds them all; any
        # other answer ends a hold
        if code in _HOLDS:
            if self.hold is not None and not self._trying:
                return  # sent before the refusal that holds everything now
            if code != self._held_by:  # a new refusal: its waits start over
                self._held_by = code
                self._refused = Backoff(*_HOLDS[code][:2])
            wait = self._refused.next()
            self.hold = ticks_add(core.ticks(), wait)
            self._trying = False
            self.log("%s; next try in %d s" % (_HOLDS[code][2], wait // 1000))
        elif self.hold is not None:
            self.hold = self._held_by = self._refused = None
            self._trying = False
            self.log("the server takes requests again")

    # --- keeping observations alive

    async def _keep(self):
        backoff = Backoff(2000, 60000)
        while True:
            self.wake.clear()
            wait = self.observe_refresh
            renew_all, self._renew_all = self._renew_all, False
            due = []
            for obs in self._subs:
                idle = ticks_diff(core.ticks(), obs.last)
                if obs.active and not renew_all and idle < self.observe_refresh:
                    wait = min(wait, self.observe_refresh - idle)
                    continue
                due.append(self.subscribe(obs))
            # together: one round trip for both, what a board awake for a moment needs
            if all(await asyncio.gather(*due)):
                backoff.reset()
                self.ready.set()
            else:
                wait = backoff.next()
                self.wake.clear()  # the failures set it: they must not cut the wait short
            await within(self.wake.wait(), wait)

    async def subscribe(self, obs):
        if self._held():
            return False
        fresh = obs.mid < 0
        try:
            await (obs.register() if fresh else obs.renew())
        except (CoapTimeout, Reset, OSError) as e:
            self.log("subscribe failed:", e)
            return False
        self._heard(obs.code)
        if not fresh:
            self.stats["resubscribe"] += 1
        if not obs.active:
            self.log("subscription refused:", _refusal(obs))
            return False
        return True

    def _on_attributes(self, obs):
        if not obs.active:
            self.wake.set()
            return
        try:
            data = self.payload.attribute_update(obs.payload())
        except (ValueError, KeyError, TypeError):
            data = None
        if not isinstance(data, dict):
            self.log("bad attribute notification dropped")
            return
        deleted = data.get("deleted")
        if not isinstance(deleted, list):  # a string would match keys by substring
            deleted = ()
        for key, cb in self._attr_callbacks:
            try:
                if key is None:
                    cb(data)
                elif key in data:
                    cb(key, data[key])
                elif key in deleted:
                    cb(key, None)
            except Exception as e:  # one bad callback must not starve the others
                self.log("attribute callback failed:", repr(e))

    def _on_rpc(self, obs):
        if not obs.active:
            self.wake.set()
            return
        raw = bytes(obs.payload())
        if not raw:  # the 2.03 that confirms the subscription
            return
        try:
            rpc_id, method, params = self.payload.rpc_request(raw)
        except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: an id of 1e400
            self.log("bad rpc notification dropped:", raw[:60])
            return
        self.rpc_came.set()
        crc = crc32(raw)
        now = core.ticks()
        for seen in self._rpc_seen:
            window = self.rpc_late_ms if seen[4] >= _CONFIRMED else self.rpc_repeat_ms
            if seen[0] == rpc_id and seen[1] == crc and ticks_diff(now, seen[2]) < window:
                self.stats["rpc_duplicate"] += 1
                if seen[4] in (_UNSENT, _CONFIRMED):
                    asyncio.create_task(self._reply(seen))
                return
        entry = [rpc_id, crc, now, None, _SERVING]
        self._rpc_seen.append(entry)
        if len(self._rpc_seen) > _RPC_MEMORY:
            self._rpc_seen.pop(0)
        self._changed()  # before it runs: after a power cut it must not run again
        asyncio.create_task(self._serve(entry, method, params))

    async def _serve(self, entry, method, params):
        try:
            result = self._rpc_handler(method, params)
            if hasattr(result, "send"):  # a coroutine
                result = await result
            reply = result if isinstance(result, dict) else {"result": result}
        except Exception as e:  # the message is the reply: make it say what was wrong
            reply = {"error": str(e) or type(e).__name__}
        entry[3] = self.payload.rpc_reply(reply)
        self._changed()
        await self._reply(entry)

    async def _reply(self, entry):
        again = entry[4] == _CONFIRMED
        entry[4] = _AGAIN if again else _SENDING
        try:
            await self.send_rpc_reply(entry[0], entry[3])
        except Exception as e:
            self.log("rpc %d reply failed:" % entry[0], e)
            if not again:
                entry[4] = _UNSENT
            return
        if not again:
            entry[2] = core.ticks()
            entry[4] = _CONFIRMED
            self._changed()

    # --- RPCs kept across deep sleep and power cuts

    def rpcs(self):
        # the remembered RPCs: [[id, crc, reply or None, state], ...]
        return [[e[0], e[1], e[3], e[4]] for e in self._rpc_seen]

    def recall_rpcs(self, kept):
        # rpcs() of an earlier run: repeats of them are duplicates again. One that was running
        # when that run ended (a power cut) does not run again: its reply says so. One with a
        # reply had finished (the journal is not written again as the reply goes out). One whose
        # reply the server took is not recalled: the server sends it no more, and a new RPC with
        # its id and body (ids start from 0 again when ThingsBoard restarts) must run
        now = core.ticks()
        for rpc_id, crc, reply, state in kept[-_RPC_MEMORY:]:
            if state >= _CONFIRMED:
                continue
            if state == _SERVING and reply is None:
                reply = self.payload.rpc_reply({"error": "interrupted by a reset, not run again"})
            self._rpc_seen.append([rpc_id, crc, now, reply, _UNSENT])

    def rpc_busy(self):
        # an RPC is running or its reply is on its way
        return any(e[4] in (_SERVING, _SENDING) for e in self._rpc_seen)

    def _changed(self):
        if self.on_rpc_change:
            self.on_rpc_change(self.rpcs())


def check(ex, *ok):
    # ex, unless its code is none of ok: then the error named for the code
    if ex.code in ok:
        return ex
    raise _error(ex.code)


def _error(code):
    # the named errors are loaded only when a request fails: a healthy device never needs them
    from .errors import error

    return error(code)


def _refusal(obs):
    try:
        check(obs, CONTENT, 67)
    except Exception as e:
        return str(e)
    return "ended"
