# protoprovision.py: device provisioning's messages in protobuf mode (protopayload.py's
# provision_request and provision_response), a module of its own: a device provisions once, at
# first boot, and never loads it again. They are encoded by a Schema of ThingsBoard's messages
# (tbproto), made for each and let go with it: the table holds 5 KB of RAM.
from protobuf.message import Schema
from protobuf.wire import ProtoError


def _thingsboard():
    import sys

    from . import tbproto

    del sys.modules[tbproto.__name__]  # not kept: needed once
    delattr(sys.modules[__name__.rpartition(".")[0]], "tbproto")
    return Schema(tbproto.SCHEMA)


def request(req):
    ctype = req.get("credentialsType") or "ACCESS_TOKEN"
    creds = {}
    if req.get("token"):
        creds["validateDeviceTokenRequestMsg"] = {"token": req["token"]}
    if req.get("hash"):
        creds["validateDeviceX509CertRequestMsg"] = {"hash": req["hash"]}
    if req.get("clientId") or req.get("username") or req.get("password"):
        creds["validateBasicMqttCredRequestMsg"] = {
            "clientId": req.get("clientId") or "",
            "userName": req.get("username") or "",
            "password": req.get("password") or "",
        }
    msg = {
        "deviceName": req.get("deviceName") or "",
        "credentialsType": ctype,
        "provisionDeviceCredentialsMsg": {
            "provisionDeviceKey": req["provisionDeviceKey"],
            "provisionDeviceSecret": req["provisionDeviceSecret"],
        },
    }
    if creds:
        msg["credentialsDataProto"] = creds
    return _thingsboard().encode("tb.ProvisionDeviceRequestMsg", msg)


def response(raw):
    try:
        d = _thingsboard().decode("tb.ProvisionDeviceResponseMsg", raw)
    except ProtoError:
        return {}
    # proto3 leaves out the zero values: UNKNOWN, ACCESS_TOKEN, ""
    d.setdefault("status", "UNKNOWN")
    d.setdefault("credentialsType", "ACCESS_TOKEN")
    d.setdefault("credentialsValue", "")
    return d
