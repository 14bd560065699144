# rpc.py: server-side RPC as ThingsBoard's device actor keeps it (DeviceActorMessageProcessor,
# submit strategy BURST), mixed into Core: ids from 0 per device, pending until answered or
# expired, every pending one pushed again on subscribe and on wake-up, un-ACKed deliveries
# counted against the retries, persistent ones kept in the store and taken back on start.
import asyncio
import json
import uuid

from .observe import DELIVERED

MAX_RETRIES = 5  # actors.rpc.max_retries: un-ACKed deliveries before an RPC is FAILED


class RpcTimeout(Exception):
    pass


class RpcFailed(Exception):
    # the transport could not deliver the RPC (a PROTOBUF profile whose RPC request schema
    # cannot take it): ThingsBoard answers the caller with this error
    pass


class _Rpc:
    def __init__(self, rpc_id, device_id, method, params, oneway, row, expires, **persistent):
        self.id = rpc_id
        self.device_id = device_id
        self.method = method
        self.params = params
        self.oneway = oneway
        self.row = row
        self.expires = expires  # ms on the core's clock
        self.persistent = bool(persistent)
        self.uuid = persistent.get("uuid")
        retries = persistent.get("retries")
        self.retry_limit = MAX_RETRIES if retries is None else min(retries, MAX_RETRIES)
        self.timeouts = 0  # deliveries that went un-ACKed
        self.future = None  # a lightweight RPC's caller waits on it
        self.timer = None  # expiry
        self.done = False

    def payload(self):
        return {"id": self.id, "method": self.method, "params": self.params}


class _Send:
    # one delivery of an RPC notification, settled by its ACK or by the ACK wait running out
    def __init__(self):
        self.settled = False
        self.timer = None


class ServerRpc:
    # needs self.store, self.obs, self.power, self.clock, self.log, self.device() and
    # self.proto_format() from Core
    def _rpc_init(self):
        self.rpc_seq = {}  # device id -> next RPC id; in memory, so a restart starts at 0
        self.pending = {}  # device id -> {rpc id: _Rpc}

    async def server_rpc(self, device_id, method, params=None, timeout=10.0, oneway=False):
        # a lightweight RPC: resolves to the device's reply (two-way) or None once delivered
        # (one-way); RpcTimeout when it expires first
        expires = self.clock() + int(timeout * 1000)
        rpc = self._start_rpc(device_id, method, params, oneway, expires, {})
        rpc.future = asyncio.get_running_loop().create_future()
        self._first_delivery(rpc)
        return await rpc.future

    def persistent_rpc(self, device_id, method, params, oneway, expires, retries, info):
        # -> the RPC's uuid, at once; its state is the store's from then on
        rpc = self._start_rpc(
            device_id,
            method,
            params,
            oneway,
            expires,
            {"uuid": str(uuid.uuid4()), "retries": retries, "additional_info": info},
        )
        if rpc.done:
            raise RpcTimeout("RPC %s expired before it was queued" % rpc.uuid)
        self._first_delivery(rpc)
        return rpc.uuid

    def _start_rpc(self, device_id, method, params, oneway, expires, persistent):
        self.device(device_id)
        rpc_id = self._next_id(device_id)
        if persistent:
            persistent = dict(persistent, expiration_ts=expires)
        row = self.store.log_rpc(device_id, rpc_id, method, params, oneway, persistent or None)
        rpc = _Rpc(rpc_id, device_id, method, params, oneway, row, expires, **persistent)
        self.log("rpc", device_id[:8], "id=%d" % rpc_id, method, json.dumps(params)[:40])
        if expires <= self.clock():  # ThingsBoard drops it unsent
            self._close(rpc, "EXPIRED" if rpc.persistent else "TIMEOUT")
        else:
            self._register(rpc)
        return rpc

    def _next_id(self, device_id):
        rpc_id = self.rpc_seq.get(device_id, 0)
        self.rpc_seq[device_id] = rpc_id + 1
        return rpc_id

    def _register(self, rpc):
        self.pending.setdefault(rpc.device_id, {})[rpc.id] = rpc
        delay = max(0, rpc.expires - self.clock()) / 1000
        rpc.timer = asyncio.get_running_loop().call_later(delay, self._expire, rpc)

    def _first_delivery(self, rpc):
        if rpc.done:
            self._answer(rpc, error=RpcTimeout("RPC %d timed out" % rpc.id))
            return
        if not self._deliver(rpc) and rpc.oneway and not rpc.persistent:
            if self.obs.get(rpc.device_id, "rpc"):
                # the actor answers a one-way lightweight RPC once it hands it to a session;
                # the transport drops it for a sleeping device, so it is lost
                self._close(rpc, "SENT")
                self._answer(rpc)

    def _deliver(self, rpc):
        # -> whether a notification went out
        rel = self.obs.get(rpc.device_id, "rpc")
        if rel is None:
            return False
        if not self.power.allowed(rpc.device_id):
            self.log("rpc", rpc.device_id[:8], "id=%d" % rpc.id, "not sent: device asleep")
            return False
        payload = rpc.payload()
        fmt = self.proto_format(self.device(rpc.device_id))
        if fmt:
            from .proto import ConversionError

            try:
                payload = fmt.rpc_request(rpc.id, rpc.method, rpc.params)
            except ConversionError as e:  # TB drops the RPC subscription and fails the RPC
                self.obs.cancel(rel, str(e), deleted=True)
                self._close(rpc, "FAILED")
                self._answer(rpc, error=RpcFailed(str(e)))
                return False
        self.store.update_rpc(rpc.row, "SENT")
        send = _Send()
        if rel.con:
            wait = min(self.power.ack_wait_ms(rpc.device_id), rpc.expires - self.clock())
            loop = asyncio.get_running_loop()
            send.timer = loop.call_later(max(0, wait) / 1000, self._unacked, rpc, send)
        rel.notify(payload, on_done=lambda status: self._delivery(rpc, send, status))
        return True

    def _delivery(self, rpc, send, status):
        # dropped or cancelled: the ACK wait runs out and counts a TIMEOUT
        if status != DELIVERED or send.settled:
            return
        send.settled = True
        if send.timer:
            send.timer.cancel()
        if rpc.done:
            return
        if not rpc.oneway:
            self.store.update_rpc(rpc.row, "DELIVERED")
        elif rpc.persistent:  # a persistent one-way RPC ends DELIVERED
            self._close(rpc, "DELIVERED")
            self._answer(rpc)
        else:
            self._close(rpc, "SUCCESSFUL")
            self._answer(rpc)

    def _unacked(self, rpc, send):
        # the notification was not ACKed in time: TIMEOUT, retried at the next subscribe or
        # wake-up, until the retries are spent
        if send.settled or rpc.done:
            return
        send.settled = True
        if rpc.timeouts < rpc.retry_limit:
            rpc.timeouts += 1
            self.store.update_rpc(rpc.row, "TIMEOUT")
            return
        error = (
            "There was a Timeout and all retry attempts have been exhausted."
            " Retry attempts set: %d" % rpc.retry_limit
        )
        self._close(rpc, "FAILED", {"error": error})
        if rpc.persistent:
            self._answer(rpc)
        # a lightweight caller still waits, and times out when the RPC expires

    def _expire(self, rpc):
        if not rpc.done:
            self._close(rpc, "EXPIRED" if rpc.persistent else "TIMEOUT")
        self._answer(rpc, error=RpcTimeout("RPC %d timed out" % rpc.id))

    def _close(self, rpc, status, response=None):
        # the RPC leaves the pending map with its final status
        rpc.done = True
        self.pending.get(rpc.device_id, {}).pop(rpc.id, None)
        self.store.update_rpc(rpc.row, status, response)

    def _answer(self, rpc, result=None, error=None):
        # what a lightweight RPC's caller gets; the expiry timer is done with
        if rpc.timer:
            rpc.timer.cancel()
            rpc.timer = None
        fut = rpc.future
        if fut is not None and not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    def rpc_subscribed(self, device_id):
        # every pending RPC goes out again on subscribe and on wake-up, even delivered ones;
        # the device de-duplicates by id (§3.2)
        for rpc in sorted(self.pending.get(device_id, {}).values(), key=lambda r: r.id):
            self._deliver(rpc)

    def rpc_reply(self, device_id, rpc_id, body):
        rpc = self.pending.get(device_id, {}).get(rpc_id)
        if rpc is None:
            self.log("rpc", device_id[:8], "reply to unknown id=%d ignored" % rpc_id)
            return
        self._close(rpc, "SUCCESSFUL", body)
        self._answer(rpc, result=body)

    def delete_rpc(self, row):
        # DELETE /api/rpc/persistent/{id}: out of the pending map and out of the store
        r = self.store.rpc(row)
        rpc = r and self.pending.get(r["device_id"], {}).pop(r["rpc_id"], None)
        if rpc is not None and rpc.row == row:
            rpc.done = True
            self._answer(rpc)
        self.store.delete_rpc(row)

    def restore(self):
        # on start ThingsBoard's device actor takes back its persistent RPCs still QUEUED,
        # with new ids; expired ones become EXPIRED. SENT, DELIVERED and TIMEOUT ones stay so.
        for r in self.store.persistent_rpcs(status="QUEUED"):
            if self.store.device(r["device_id"]) is None:
                continue
            if r["expiration_ts"] <= self.clock():
                self.store.update_rpc(r["row"], "EXPIRED")
                continue
            rpc_id = self._next_id(r["device_id"])
            self.store.update_rpc(r["row"], "QUEUED", rpc_id=rpc_id)
            rpc = _Rpc(
                rpc_id,
                r["device_id"],
                r["method"],
                r["params"],
                bool(r["oneway"]),
                r["row"],
                r["expiration_ts"],
                uuid=r["uuid"],
                retries=r["retries"],
            )
            self._register(rpc)
