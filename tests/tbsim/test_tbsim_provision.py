# Provisioning of transport reference §7.1 with provision profiles from the admin API.
import json

import aiocoap
import pytest
from tbsim_helpers import aiocoap_request, http

from tools.tbsim.wire import codec


def profile(sim, ptype, key="pk", secret="ps", name="p1"):
    status, p = http(
        sim,
        "POST",
        "/api/deviceProfile",
        {
            "name": name,
            "provisionType": ptype,
            "provisionDeviceKey": key,
            "profileData": {
                "provisionConfiguration": {"type": ptype, "provisionDeviceSecret": secret}
            },
        },
    )
    assert status == 200, p
    return p["id"]["id"]


def provision(sim, body, path="/api/v1/provision"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return aiocoap_request(sim, aiocoap.POST, path, raw)


def test_create_new_device(sim):
    pid = profile(sim, "ALLOW_CREATE_NEW_DEVICES")
    req = {"deviceName": "new-1", "provisionDeviceKey": "pk", "provisionDeviceSecret": "ps"}
    code, payload, opt = provision(sim, req)
    assert code == "2.01" and opt.content_format == 0  # text/plain, as CoapExchange forces
    reply = json.loads(payload)
    assert list(reply) == ["credentialsValue", "credentialsType", "status"]
    assert reply["credentialsType"] == "ACCESS_TOKEN" and reply["status"] == "SUCCESS"
    token = reply["credentialsValue"]
    # the new device works with its token and belongs to the profile
    code, _, _ = aiocoap_request(sim, aiocoap.POST, "/api/v1/%s/telemetry" % token, b"{a:1}")
    assert code == "2.01"
    dev = http(sim, "GET", "/api/tenant/devices?deviceName=new-1")[1]
    assert dev["deviceProfileId"]["id"] == pid
    # the same name again: FAILURE
    code, payload, _ = provision(sim, req)
    assert (code, json.loads(payload)) == (
        "4.00",
        {"errorMsg": "Failed to provision device!", "status": "FAILURE"},
    )


def test_chosen_token_and_any_path_segment(sim):
    profile(sim, "ALLOW_CREATE_NEW_DEVICES")
    req = {
        "deviceName": "n2",
        "provisionDeviceKey": "pk",
        "provisionDeviceSecret": "ps",
        "credentialsType": "ACCESS_TOKEN",
        "token": "MY_TOKEN",
    }
    code, payload, _ = provision(sim, req, path="/api/v1/anything/provision")
    assert code == "2.01" and json.loads(payload)["credentialsValue"] == "MY_TOKEN"


def test_mqtt_basic_credentials_value_is_an_object(sim):
    profile(sim, "ALLOW_CREATE_NEW_DEVICES")
    req = {
        "deviceName": "n3",
        "provisionDeviceKey": "pk",
        "provisionDeviceSecret": "ps",
        "credentialsType": "MQTT_BASIC",
        "clientId": "c",
        "username": "u",
        "password": "p",
    }
    reply = json.loads(provision(sim, req)[1])
    assert reply["credentialsValue"] == {"clientId": "c", "userName": "u", "password": "p"}


@pytest.mark.parametrize("key,secret", [("pk", "wrong"), ("nokey", "ps")])
def test_unknown_key_or_wrong_secret_is_not_found(sim, key, secret):
    profile(sim, "ALLOW_CREATE_NEW_DEVICES")
    code, payload, _ = provision(
        sim, {"deviceName": "x", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    )
    assert (code, json.loads(payload)) == (
        "4.00",
        {"errorMsg": "Provision data was not found!", "status": "NOT_FOUND"},
    )


def test_check_pre_provisioned_devices(sim):
    pid = profile(sim, "CHECK_PRE_PROVISIONED_DEVICES")
    req = {"deviceName": "pre-1", "provisionDeviceKey": "pk", "provisionDeviceSecret": "ps"}
    assert json.loads(provision(sim, req)[1])["status"] == "FAILURE"  # device missing
    status, dev = http(
        sim, "POST", "/api/device", {"name": "pre-1", "deviceProfileId": {"id": pid}}
    )
    assert status == 200
    code, payload, _ = provision(sim, req)
    assert code == "2.01"
    token = json.loads(payload)["credentialsValue"]
    creds = http(sim, "GET", "/api/device/%s/credentials" % dev["id"]["id"])[1]
    assert creds["credentialsId"] == token
    attrs = http(
        sim,
        "GET",
        "/api/plugins/telemetry/DEVICE/%s/values/attributes/SERVER_SCOPE" % dev["id"]["id"],
    )[1]
    assert [(a["key"], a["value"]) for a in attrs] == [("provisionState", "provisioned")]
    assert json.loads(provision(sim, req)[1])["status"] == "FAILURE"  # already provisioned


def test_bad_provision_bodies(sim, udp):
    profile(sim, "ALLOW_CREATE_NEW_DEVICES")
    # empty body: JSON fails, protobuf decodes an empty request -> NOT_FOUND as protobuf
    req = udp.request(codec.POST, "/api/v1/provision", b"")
    resp = udp.recv()
    assert (resp.type, resp.mid, resp.code, resp.payload) == (
        codec.ACK,
        req.mid,
        codec.BAD_REQUEST,
        b"\x08\x02",
    )
    # key or secret missing: 4.00 without a body
    assert provision(sim, {"provisionDeviceKey": "pk"})[:2] == ("4.00", b"")
    assert provision(sim, b"[1,2]")[:2] == ("4.00", b"")
