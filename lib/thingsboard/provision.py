# provision.py: ThingsBoard device provisioning over CoAP (POST /api/v1/provision), used once
# on a first boot, so it lives apart from the per-message code.
from coap.client import ResponseError
from coap.codec import CREATED, POST, URI_PATH, code_str

_PATH = [(URI_PATH, b"api"), (URI_PATH, b"v1"), (URI_PATH, b"provision")]


class ProvisionError(ResponseError):
    # status: the server's "NOT_FOUND" / "FAILURE" (or the CoAP code); message: its errorMsg
    def __init__(self, code, status, message):
        super().__init__(code, "%s: %s" % (status, message))
        self.status = status
        self.message = message


async def provision(
    client, device_name, key, secret, credentials=None, timeout=None, payload=None
):
    # -> {"credentialsType": ..., "credentialsValue": ..., "status": "SUCCESS"}
    # credentials: extra request fields, e.g. {"credentialsType": "ACCESS_TOKEN", "token": "..."}
    # payload: the payload format (None: JSON; a ProtoPayload for a PROTOBUF profile)
    if payload is None:
        from . import jsonpayload as payload
    body = {"provisionDeviceKey": key, "provisionDeviceSecret": secret}
    if device_name:  # empty: the server picks a name
        body["deviceName"] = device_name
    if credentials:
        body.update(credentials)
    ex = client.exchange()
    await ex.request(POST, _PATH, payload.provision_request(body), timeout=timeout)
    reply = payload.provision_response(ex.payload())
    if ex.code == CREATED and reply.get("status") == "SUCCESS":
        value = reply.get("credentialsValue")  # the token (or the certificate) to keep
        if type(value) is str and value:
            return reply
        raise ProvisionError(ex.code, "SUCCESS", "the reply has no credentials")
    status = reply.get("status") or code_str(ex.code)
    raise ProvisionError(ex.code, status, reply.get("errorMsg") or "provisioning refused")
