# proto.py: a COAP device profile with payload type PROTOBUF (transport reference §8.2), as
# ThingsBoard's ProtoCoapAdaptor handles it: telemetry, client attributes and RPC replies are
# decoded with the profile's schemas and printed to JSON like Java's JsonFormat (lowerCamelCase
# names, fields without presence included with their defaults, int64 as strings), then follow
# the JSON rules; RPC requests are built from {"method", "requestId", "params"} with the RPC
# request schema; everything else uses ThingsBoard's fixed messages. Descriptors come from the
# schema text through tools/protoschema (the parser the device's schema tool uses too), so
# this module needs the PyPI protobuf package, imported only when a PROTOBUF profile is used.
import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from tools.protoschema import DEFAULTS, PROFILE_KEYS, THINGSBOARD_PROTO, message_class

from . import jsonrules

_FIXED = {}  # message name -> class of ThingsBoard's own messages


class ConversionError(ValueError):
    pass


def fixed(name):
    cls = _FIXED.get(name)
    if cls is None:
        cls = _FIXED[name] = message_class(THINGSBOARD_PROTO, "tb." + name, "thingsboard.proto")
    return cls


def _print(msg):
    # Java's JsonFormat.printer().includingDefaultValueFields() as JSON text
    return json.dumps(json_format.MessageToDict(msg, always_print_fields_with_no_presence=True))


def _parse(data, cls):
    try:
        return cls.FromString(bytes(data))
    except DecodeError as e:
        raise jsonrules.JsonError("not a %s: %s" % (cls.DESCRIPTOR.name, e)) from e


def _java_json(cls, value):
    # Gson/JsonFormat leniency the Python parser lacks: a number or boolean is accepted for a
    # string field (Java reads it with getAsString)
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        f = cls.DESCRIPTOR.fields_by_camelcase_name.get(k) or cls.DESCRIPTOR.fields_by_name.get(k)
        if f is not None and f.type == f.TYPE_STRING and isinstance(v, (bool, int, float)):
            v = json.dumps(v)
        out[k] = v
    return out


class ProtoFormat:
    def __init__(self, conf):
        self.classes = {}
        for role, key in PROFILE_KEYS.items():
            text = conf.get(key) or DEFAULTS[role]
            self.classes[role] = message_class(text, what=role + " schema")

    # device -> server

    def telemetry(self, data):
        return jsonrules.telemetry(_print(_parse(data, self.classes["telemetry"])))

    def attributes(self, data):
        return jsonrules.attributes(_print(_parse(data, self.classes["attributes"])))

    def rpc_response(self, data):
        # the RPC result is the reply message as JSON
        return json.loads(_print(_parse(data, self.classes["rpc_response"])))

    def client_rpc(self, data):
        msg = _parse(data, fixed("RpcRequest"))
        try:
            params = jsonrules.parse(msg.params) if msg.params else None
        except jsonrules.JsonError:
            params = msg.params  # the rule chain gets the text as it came
        return msg.method, params

    def claim(self, data):
        msg = _parse(data, fixed("ClaimDevice"))
        return msg.secretKey, msg.durationMs

    # server -> device

    def rpc_request(self, rpc_id, method, params):
        cls = self.classes["rpc_request"]
        doc = {"method": method, "requestId": rpc_id}
        if params is not None:
            doc["params"] = params
        try:
            msg = json_format.ParseDict(_java_json(cls, doc), cls(), ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError) as e:
            raise ConversionError("Failed to convert device RPC command to CoAP msg") from e
        return msg.SerializeToString()

    def attribute_update(self, values=None, deleted=None):
        msg = fixed("AttributeUpdateNotificationMsg")()
        for key, value in (values or {}).items():
            _tskv(msg.sharedUpdated.add(), key, value)
        msg.sharedDeleted.extend(deleted or ())
        return msg.SerializeToString()

    def attributes_reply(self, client, shared):
        msg = fixed("GetAttributeResponseMsg")()
        for key, value in client.items():
            _tskv(msg.clientAttributeList.add(), key, value)
        for key, value in shared.items():
            _tskv(msg.sharedAttributeList.add(), key, value)
        return msg.SerializeToString()

    def client_rpc_reply(self, reply):
        msg = fixed("ToServerRpcResponseMsg")()
        msg.payload = json.dumps(reply, separators=(",", ":"))
        return msg.SerializeToString()


def _tskv(tskv, key, value, ts=0):
    kv = tskv.kv
    kv.key = key
    if isinstance(value, bool):
        kv.type, kv.bool_v = 0, value
    elif isinstance(value, int):
        kv.type, kv.long_v = 1, value
    elif isinstance(value, float):
        kv.type, kv.double_v = 2, value
    elif isinstance(value, str):
        kv.type, kv.string_v = 3, value
    else:
        kv.type, kv.json_v = 4, json.dumps(value, separators=(",", ":"))
    tskv.ts = ts


def provision_request(data):
    # a provisioning body that is not JSON (§7.1) -> the request as JSON fields, or None
    try:
        msg = fixed("ProvisionDeviceRequestMsg").FromString(bytes(data))
    except DecodeError:
        return None
    creds = msg.credentialsDataProto
    names = fixed("ProvisionDeviceRequestMsg").DESCRIPTOR.fields_by_name
    ctype = names["credentialsType"].enum_type.values_by_number[msg.credentialsType].name
    return {
        "deviceName": msg.deviceName,
        "provisionDeviceKey": msg.provisionDeviceCredentialsMsg.provisionDeviceKey,
        "provisionDeviceSecret": msg.provisionDeviceCredentialsMsg.provisionDeviceSecret,
        "credentialsType": ctype,
        "token": creds.validateDeviceTokenRequestMsg.token,
        "hash": creds.validateDeviceX509CertRequestMsg.hash,
        "clientId": creds.validateBasicMqttCredRequestMsg.clientId,
        "username": creds.validateBasicMqttCredRequestMsg.userName,
        "password": creds.validateBasicMqttCredRequestMsg.password,
    }


def provision_reply(reply):
    cls = fixed("ProvisionDeviceResponseMsg")
    msg = cls(status=reply["status"])
    if reply["status"] == "SUCCESS":
        msg.credentialsType = reply["credentialsType"]
        value = reply["credentialsValue"]
        msg.credentialsValue = value if isinstance(value, str) else json.dumps(value)
    return msg.SerializeToString()
