# core.py: what a ThingsBoard device actor and its services do for tbsim, shared by the CoAP
# resources and the admin API: shared-attribute updates pushed to observers, server-side RPC
# (ids from 0 per device, pending until answered or expired, persistent ones kept in the
# store), power saving (power.py), OTA assignment, provisioning.
import asyncio
import json
import secrets
import time
import uuid

from . import ota, power
from .observe import DELIVERED
from .ratelimit import RateLimits
from .store import new_token, now_ms

MAX_RETRIES = 5  # actors.rpc.max_retries: un-ACKed deliveries before an RPC is FAILED


class RpcTimeout(Exception):
    pass


class NotFound(Exception):
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


def payload_config(transport):
    # a profile's transportConfiguration -> its PROTOBUF settings, or None for JSON (§8.2)
    if not isinstance(transport, dict) or transport.get("type") != "COAP":
        return None
    dev = transport.get("coapDeviceTypeConfiguration") or {}
    conf = dev.get("transportPayloadTypeConfiguration") or {}
    if dev.get("coapDeviceType", "DEFAULT") != "DEFAULT":
        return None
    return conf if conf.get("transportPayloadType") == "PROTOBUF" else None


def default_rpc_handler(device, method, params):
    # Client-side RPC answers (a rule chain's "RPC Call Reply"); None means no reply at all.
    if method == "getTime":
        return {"time": int(time.time() * 1000)}
    if method == "echo":
        return params
    return {"error": "Unsupported method: %s" % method}


class Core:
    def __init__(self, store, registry, log, rpc_handler=None, clock=now_ms):
        self.store = store
        self.obs = registry
        self.log = log
        self.clock = clock  # ms; RPC expiry and power saving read it, so tests can fake it
        self.power = power.PowerSaving(self.power_settings, clock)
        registry.on_ack = self.uplink  # the ACK of a CON notification is an uplink too
        self.rpc_handler = rpc_handler or default_rpc_handler
        self.rpc_seq = {}  # device id -> next RPC id; in memory, so a restart starts at 0
        self.pending = {}  # device id -> {rpc id: _Rpc}
        self._formats = {}  # profile id -> (its transport JSON, ProtoFormat or None)
        self.activity = {}  # device id -> ms of its last request (TB's lastActivityTime)
        self.limits = RateLimits()  # none until configured (TbSim's rate_limits)

    def device(self, device_id):
        dev = self.store.device(device_id)
        if dev is None:
            raise NotFound("Device with id [%s] is not found" % device_id)
        return dev

    def touch(self, device_id):
        # kept in memory: after a restart a device is "never seen" until it talks again
        ts = self.activity[device_id] = now_ms()
        self.store.changed("activity", device_id, ts=ts)

    def proto_format(self, dev):
        # the device profile's protobuf payload format (tbsim/proto.py), None for JSON
        profile = self.store.profile(dev["profile_id"])
        transport = profile and profile["transport"]
        cached = self._formats.get(dev["profile_id"])
        if cached is None or cached[0] != transport:
            fmt = None
            conf = payload_config(transport)
            if conf:
                from . import proto

                fmt = proto.ProtoFormat(conf)
            cached = self._formats[dev["profile_id"]] = (transport, fmt)
        return cached[1]

    # shared attributes

    def set_shared(self, device_id, values):
        dev = self.device(device_id)
        if not values:
            return
        self.store.set_attributes(device_id, "SHARED_SCOPE", values)
        self._push_attributes(dev, values, [])

    def delete_shared(self, device_id, keys):
        dev = self.device(device_id)
        if not keys:
            return
        self.store.delete_attributes(device_id, "SHARED_SCOPE", keys)
        self._push_attributes(dev, {}, list(keys))

    def _push_attributes(self, dev, values, deleted):
        rel = self.obs.get(dev["id"], "attributes")
        if rel is None:
            return
        if not self.power.allowed(dev["id"]):  # asleep: kept for the next wake-up
            self.power.queue(dev["id"], values, deleted)
            self.log("power", dev["name"], "asleep: attribute update queued")
            return
        fmt = self.proto_format(dev)
        if fmt:
            rel.notify(fmt.attribute_update(values, deleted))
            return
        payload = dict(values)
        if deleted:
            payload["deleted"] = deleted
        rel.notify(payload)

    # power saving (transport reference §9.3)

    def power_settings(self, device_id):
        dev = self.store.device(device_id)
        if dev is None:
            return None, power.DEFAULT_MS, power.DEFAULT_MS
        profile = self.store.profile(dev["profile_id"])
        return power.settings(dev["transport"], profile and profile["transport"])

    def uplink(self, device_id):
        # every authenticated request and every ACKed CON notification; on waking, the merged
        # missed attribute update goes out at once and pending RPCs once the request is handled
        if not self.power.uplink(device_id):
            return
        dev = self.device(device_id)
        self.log("power", dev["name"], "awake")
        rel = self.obs.get(device_id, "attributes")
        missed = rel and self.power.take_missed(device_id)
        if missed:
            self._push_attributes(dev, *missed)
        if self.obs.get(device_id, "rpc"):
            asyncio.get_running_loop().call_soon(self.rpc_subscribed, device_id)

    def delete_device(self, device_id):
        self.device(device_id)
        self.obs.cancel_device(device_id, "device deleted")
        for rpc in list(self.pending.pop(device_id, {}).values()):
            self._close(rpc, "EXPIRED")
            self._answer(rpc, error=RpcTimeout("device deleted"))
        self.activity.pop(device_id, None)
        self.power.forget(device_id)
        self.store.delete_device(device_id)

    # server-side RPC (DeviceActorMessageProcessor, submit strategy BURST)

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

    # OTA

    def assign_ota(self, device_id, ota_type, package_id):
        # set the package's fw_*/sw_* attributes, or delete them all when package_id is None
        self.device(device_id)
        column = "firmware_id" if ota_type == "FIRMWARE" else "software_id"
        if package_id is None:
            self.store.update_device(device_id, **{column: None})
            self.delete_shared(device_id, ota.unassigned_keys(ota_type))
            return
        pkg = self.store.ota(package_id)
        if pkg is None or pkg["type"] != ota_type:
            raise NotFound("%s package [%s] is not found" % (ota_type, package_id))
        self.store.update_device(device_id, **{column: package_id})
        p = ota.TYPES[ota_type]
        ts = now_ms()
        target = {"target_%s_title" % p: pkg["title"], "target_%s_version" % p: pkg["version"]}
        if pkg.get("tag"):
            target["target_%s_tag" % p] = pkg["tag"]
        target["target_%s_ts" % p] = ts
        self.store.add_telemetry(device_id, [(ts, dict(target, **{p + "_state": "QUEUED"}))])
        self.store.add_telemetry(device_id, [(ts + 1, {p + "_state": "INITIATED"})])
        values, deleted = ota.assigned_attributes(pkg)
        self.set_shared(device_id, values)
        self.delete_shared(device_id, deleted)

    def ota_for(self, device, ota_type):
        pid = device["firmware_id" if ota_type == "FIRMWARE" else "software_id"]
        return self.store.ota(pid, with_data=True) if pid else None

    # provisioning and claiming (§7)

    def provision(self, req):
        # -> (ok, reply dict); reply is what goes back to the device as JSON
        key = req.get("provisionDeviceKey")
        secret = req.get("provisionDeviceSecret")
        profile = self.store.profile_by_key(key) if key else None
        not_found = {"errorMsg": "Provision data was not found!", "status": "NOT_FOUND"}
        failure = {"errorMsg": "Failed to provision device!", "status": "FAILURE"}
        if (
            not secret
            or profile is None
            or profile["provision_secret"] != secret
            or profile["provision_type"] == "DISABLED"
        ):
            return False, not_found
        name = req.get("deviceName") or secrets.token_hex(10)
        dev = self.store.device_by_name(name)
        if profile["provision_type"] == "ALLOW_CREATE_NEW_DEVICES":
            if dev is not None:
                return False, failure
            dev = self.store.create_device(name, profile_id=profile["id"])
        else:  # CHECK_PRE_PROVISIONED_DEVICES
            if dev is None or dev["profile_id"] != profile["id"]:
                return False, failure
            state = self.store.attribute_dict(dev["id"], "SERVER_SCOPE", ["provisionState"])
            if state.get("provisionState") == "provisioned":
                return False, failure
        ctype = req.get("credentialsType") or "ACCESS_TOKEN"
        if ctype == "ACCESS_TOKEN":
            value = req.get("token") or new_token()
            self.store.set_credentials(dev["id"], ctype, value)
        elif ctype == "X509_CERTIFICATE":
            value = req.get("hash")
            self.store.set_credentials(dev["id"], ctype, None, value)
        elif ctype == "MQTT_BASIC":
            value = {
                "clientId": req.get("clientId"),
                "userName": req.get("username"),
                "password": req.get("password"),
            }
            self.store.set_credentials(dev["id"], ctype, None, json.dumps(value))
        else:
            return False, failure
        self.store.set_attributes(dev["id"], "SERVER_SCOPE", {"provisionState": "provisioned"})
        self.log("provisioned", name, ctype)
        return True, {"credentialsValue": value, "credentialsType": ctype, "status": "SUCCESS"}

    def claim_request(self, device_id, secret, duration_ms, default_ms=86400000):
        self.store.set_claim(device_id, secret, now_ms() + (duration_ms or default_ms))

    def claim(self, device_name, secret):
        # -> "SUCCESS", "CLAIMED" or "FAILURE", as the customer claim API answers
        dev = self.store.device_by_name(device_name)
        info = dev and self.store.claim(dev["id"])
        if not info:
            return "FAILURE", dev
        if info["claimed"]:
            return "CLAIMED", dev
        if info["expires_ts"] < now_ms() or info["secret"] != (secret or ""):
            return "FAILURE", dev
        self.store.mark_claimed(dev["id"])
        return "SUCCESS", dev
