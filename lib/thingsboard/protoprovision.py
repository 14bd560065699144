# protoprovision.py: device provisioning's messages in protobuf mode (protopayload.py's
# provision_request and provision_response), a module of its own: a device provisions once, at
# first boot, and never loads it again. tb: a Schema of ThingsBoard's messages (tbproto).
from protobuf.wire import ProtoError


def request(tb, req):
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
    return tb.encode("tb.ProvisionDeviceRequestMsg", msg)


def response(tb, raw):
    try:
        d = tb.decode("tb.ProvisionDeviceResponseMsg", raw)
    except ProtoError:
        return {}
    # proto3 leaves out the zero values: UNKNOWN, ACCESS_TOKEN, ""
    d.setdefault("status", "UNKNOWN")
    d.setdefault("credentialsType", "ACCESS_TOKEN")
    d.setdefault("credentialsValue", "")
    return d
