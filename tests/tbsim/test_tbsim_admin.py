# The HTTP admin API on ThingsBoard's REST paths: devices, credentials, attributes, telemetry,
# RPC (with TB's timeout statuses), profiles, and 4xx JSON errors for bad requests.
import json

import aiocoap
import pytest
from tbsim_helpers import aiocoap_request, http


def test_devices_create_list_get_credentials(sim):
    status, dev = http(sim, "POST", "/api/device?accessToken=ABC123", {"name": "d1", "label": "L"})
    assert status == 200 and dev["name"] == "d1" and dev["id"]["entityType"] == "DEVICE"
    did = dev["id"]["id"]
    assert http(sim, "GET", "/api/device/" + did)[1] == dev
    page = http(sim, "GET", "/api/tenant/devices?pageSize=10&page=0")[1]
    assert [d["name"] for d in page["data"]] == ["d1"] and page["totalElements"] == 1
    creds = http(sim, "GET", "/api/device/%s/credentials" % did)[1]
    assert (creds["credentialsType"], creds["credentialsId"]) == ("ACCESS_TOKEN", "ABC123")
    # generated token when none is given, and it works on CoAP
    dev2 = http(sim, "POST", "/api/device", {"name": "d2"})[1]
    token = http(sim, "GET", "/api/device/%s/credentials" % dev2["id"]["id"])[1]["credentialsId"]
    assert len(token) == 20
    assert (
        aiocoap_request(sim, aiocoap.POST, "/api/v1/%s/telemetry" % token, b"{a:1}")[0] == "2.01"
    )
    # change the token
    body = {"deviceId": {"id": did}, "credentialsType": "ACCESS_TOKEN", "credentialsId": "NEW"}
    assert http(sim, "POST", "/api/device/credentials", body)[1]["credentialsId"] == "NEW"
    assert aiocoap_request(sim, aiocoap.POST, "/api/v1/ABC123/telemetry", b"{a:1}")[0] == "4.01"


@pytest.mark.parametrize(
    "method,path,body,status",
    [
        ("POST", "/api/device", {"label": "no name"}, 400),
        ("POST", "/api/device", [1], 400),
        ("GET", "/api/device/nope", None, 404),
        ("GET", "/api/nothing", None, 404),
        ("PUT", "/api/device", {}, 405),
        ("POST", "/api/plugins/telemetry/DEVICE/nope/SHARED_SCOPE", {"a": 1}, 404),
        ("POST", "/api/rpc/twoway/nope", {"method": "m"}, 404),
        ("POST", "/api/deviceProfile", {"name": "p", "provisionType": "BAD"}, 400),
        ("POST", "/api/tbsim/faults", {"in": {"loss": 2}}, 400),
        ("POST", "/api/tbsim/faults", {"bogus": 1}, 400),
    ],
)
def test_bad_requests_get_4xx_json(sim, method, path, body, status):
    got, reply = http(sim, method, path, body)
    assert got == status and reply["status"] == status and reply["message"]


def test_duplicate_device_name_is_400(sim):
    http(sim, "POST", "/api/device", {"name": "d1"})
    status, reply = http(sim, "POST", "/api/device", {"name": "d1"})
    assert status == 400 and "already exists" in reply["message"]


def test_raw_invalid_json_is_400(sim):
    assert http(sim, "POST", "/api/device", raw=b"{nope")[0] == 400


def test_shared_attributes_post_read_delete(sim, device):
    base = "/api/plugins/telemetry/DEVICE/%s" % device["id"]
    assert http(sim, "POST", base + "/SHARED_SCOPE", {"a": 1, "b": "2", "c": None})[0] == 200
    assert http(sim, "POST", base + "/attributes/SERVER_SCOPE", {"s": True})[0] == 200
    assert http(sim, "POST", base + "/CLIENT_SCOPE", {"x": 1})[0] == 400
    attrs = http(sim, "GET", base + "/values/attributes")[1]
    assert {(a["key"], json.dumps(a["value"])) for a in attrs} == {
        ("a", "1"),
        ("b", "2"),
        ("s", "true"),
    }
    assert [a["key"] for a in http(sim, "GET", base + "/values/attributes?keys=b")[1]] == ["b"]
    shared = http(sim, "GET", base + "/values/attributes/SHARED_SCOPE")[1]
    assert sorted(a["key"] for a in shared) == ["a", "b"]
    assert http(sim, "DELETE", base + "/SHARED_SCOPE")[0] == 400  # keys required
    assert http(sim, "DELETE", base + "/SHARED_SCOPE?keys=a,b")[0] == 200
    assert sim.attributes(device["id"], "SHARED_SCOPE") == {}
    assert http(sim, "GET", base + "/keys/attributes")[1] == ["s"]


def test_timeseries_latest_and_history(sim, device):
    body = b'[{"ts":1000,"values":{"t":1,"s":"x"}},{"ts":2000,"values":{"t":2.5,"o":{"k":true}}}]'
    assert aiocoap_request(sim, aiocoap.POST, "/api/v1/TOKEN_ONE/telemetry", body)[0] == "2.01"
    base = "/api/plugins/telemetry/DEVICE/%s" % device["id"]
    latest = http(sim, "GET", base + "/values/timeseries")[1]
    assert latest == {
        "o": [{"ts": 2000, "value": '{"k":true}'}],
        "s": [{"ts": 1000, "value": "x"}],
        "t": [{"ts": 2000, "value": "2.5"}],
    }  # strings, as TB answers without useStrictDataTypes
    hist = http(
        sim,
        "GET",
        base + "/values/timeseries?keys=t&startTs=0&endTs=5000"
        "&orderBy=ASC&useStrictDataTypes=true",
    )[1]
    assert hist == {"t": [{"ts": 1000, "value": 1}, {"ts": 2000, "value": 2.5}]}
    assert http(sim, "GET", base + "/values/timeseries?keys=t&startTs=1500&endTs=5000")[1] == {
        "t": [{"ts": 2000, "value": "2.5"}]
    }
    assert http(sim, "GET", base + "/values/timeseries?keys=t&startTs=x")[0] == 400
    assert http(sim, "GET", base + "/keys/timeseries")[1] == ["o", "s", "t"]


@pytest.mark.parametrize(
    "path,status",
    [("/api/rpc/twoway/", 408), ("/api/plugins/rpc/twoway/", 504), ("/api/rpc/oneway/", 408)],
)
def test_rpc_timeout_statuses(sim, device, path, status):
    got, reply = http(sim, "POST", path + device["id"], {"method": "m", "timeout": 200})
    assert got == status and reply["status"] == status
    log = http(sim, "GET", "/api/tbsim/rpc/" + device["id"])[1]
    assert [(r["rpc_id"], r["status"]) for r in log] == [(0, "TIMEOUT")]


def test_rpc_needs_a_method(sim, device):
    assert http(sim, "POST", "/api/rpc/twoway/" + device["id"], {"params": 1})[0] == 400


def test_profiles_crud(sim):
    profiles = http(sim, "GET", "/api/deviceProfiles")[1]["data"]
    assert [p["name"] for p in profiles] == ["default"] and profiles[0]["default"]
    body = {
        "name": "p",
        "provisionType": "ALLOW_CREATE_NEW_DEVICES",
        "provisionDeviceKey": "k",
        "provisionDeviceSecret": "s",
    }
    p = http(sim, "POST", "/api/deviceProfile", body)[1]
    pid = p["id"]["id"]
    assert p["profileData"]["provisionConfiguration"] == {
        "type": "ALLOW_CREATE_NEW_DEVICES",
        "provisionDeviceSecret": "s",
    }
    body.update(id={"id": pid}, provisionType="CHECK_PRE_PROVISIONED_DEVICES")
    assert http(sim, "POST", "/api/deviceProfile", body)[1]["provisionType"] == (
        "CHECK_PRE_PROVISIONED_DEVICES"
    )
    assert http(sim, "POST", "/api/deviceProfile", dict(body, id=None, name="q"))[0] == 400  # key
    assert (
        http(
            sim,
            "POST",
            "/api/deviceProfile",
            {"name": "x", "provisionType": "ALLOW_CREATE_NEW_DEVICES"},
        )[0]
        == 400
    )
    assert http(sim, "GET", "/api/deviceProfile/" + pid)[1]["name"] == "p"
    default_id = profiles[0]["id"]["id"]
    assert http(sim, "DELETE", "/api/deviceProfile/" + default_id)[0] == 400
    assert http(sim, "DELETE", "/api/deviceProfile/" + pid)[0] == 200
    assert http(sim, "GET", "/api/deviceProfile/" + pid)[0] == 404


def test_login_is_accepted_for_scripts(sim):
    status, reply = http(sim, "POST", "/api/auth/login", {"username": "u", "password": "p"})
    assert status == 200 and reply["token"]
