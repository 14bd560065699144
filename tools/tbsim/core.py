# core.py: what a ThingsBoard device actor and its services do for tbsim, shared by the CoAP
# resources and the admin API: shared-attribute updates pushed to observers, server-side RPC
# (rpc.py), power saving (power.py), OTA assignment, provisioning.
import asyncio
import json
import secrets
import time

from . import ota, power
from .ratelimit import RateLimits
from .rpc import RpcFailed, RpcTimeout, ServerRpc
from .store import new_token, now_ms

__all__ = ["Core", "NotFound", "RpcFailed", "RpcTimeout", "payload_config"]


class NotFound(Exception):
    pass


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


class Core(ServerRpc):
    def __init__(self, store, registry, log, rpc_handler=None, clock=now_ms):
        self.store = store
        self.obs = registry
        self.log = log
        self.clock = clock  # ms; RPC expiry and power saving read it, so tests can fake it
        self.power = power.PowerSaving(self.power_settings, clock)
        registry.on_ack = self.uplink  # the ACK of a CON notification is an uplink too
        self.rpc_handler = rpc_handler or default_rpc_handler
        self._rpc_init()
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
