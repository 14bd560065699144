# lib/thingsboard in protobuf mode on the unix port against tbsim with a PROTOBUF device profile
# (set up through tbsim's admin API, as on ThingsBoard): every SDK call, with what tbsim stored
# or answered as the judge. tbsim decodes with the PyPI protobuf package, the device with
# lib/protobuf: the two only meet on the wire.
import json
import threading
import urllib.request

import pytest

from tools.protoschema import profile
from tools.tbsim import RpcFailed

TOKEN = "TB_PROTO_TOKEN_0001"
TELEMETRY = """syntax = "proto3";
package lab;

message Reading {
  optional int64 ts = 1;
  Values values = 2;

  message Values {
    optional double temperature = 1;
    optional int32 humidity = 2;
    optional string status = 3;
    optional double air_temp = 4;
    repeated int32 history = 5;
  }
}
"""
ATTRIBUTES = """syntax = "proto3";
package lab;
message Attrs { optional string fw = 1; optional string mac = 2; optional int32 free_heap = 3; }
"""


def admin(sim, method, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (sim.http_port, path),
        data=None if body is None else json.dumps(body).encode(),
        method=method,
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def protobuf_profile(sim, name="proto", telemetry=TELEMETRY, attributes=ATTRIBUTES, key=None):
    """A COAP device profile with payload type PROTOBUF, saved like ThingsBoard's; with a
    provision key, devices may provision themselves into it (secret "S")."""
    conf = {"transportPayloadType": "PROTOBUF", "deviceTelemetryProtoSchema": telemetry}
    conf["deviceAttributesProtoSchema"] = attributes
    transport = {
        "type": "COAP",
        "coapDeviceTypeConfiguration": {
            "coapDeviceType": "DEFAULT",
            "transportPayloadTypeConfiguration": conf,
        },
    }
    body = {"name": name, "profileData": {"transportConfiguration": transport}}
    if key:
        body["provisionDeviceKey"] = key
        body["profileData"]["provisionConfiguration"] = {
            "type": "ALLOW_CREATE_NEW_DEVICES",
            "provisionDeviceSecret": "S",
        }
    return admin(sim, "POST", "/api/deviceProfile", body)


@pytest.fixture
def pdev(sim):
    p = protobuf_profile(sim)
    return sim.create_device("tb-proto", token=TOKEN, profile_id=p["id"]["id"])


SCHEMA = profile({"telemetry": TELEMETRY, "attributes": ATTRIBUTES})[0]


@pytest.fixture
def device(sim, pdev, driver):
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, token=TOKEN, schema=SCHEMA)
    return driver


def test_profile_round_trips_through_the_admin_api(sim, pdev):
    got = admin(sim, "GET", "/api/deviceProfile/" + pdev["profile_id"])
    conf = got["profileData"]["transportConfiguration"]["coapDeviceTypeConfiguration"]
    assert conf["transportPayloadTypeConfiguration"]["deviceTelemetryProtoSchema"] == TELEMETRY


def test_a_schema_thingsboard_would_refuse_is_refused(sim):
    with pytest.raises(urllib.error.HTTPError) as e:
        protobuf_profile(sim, "bad", telemetry='syntax = "proto2"; message M { }')
    body = json.loads(e.value.read())
    assert e.value.code == 400 and "proto3" in body["message"]


def test_telemetry_with_ts_keys_by_their_json_names(sim, pdev, device):
    values = {"temperature": 21.5, "humidity": 40, "air_temp": 3.0, "history": [1, 2]}
    values["bogus"] = 1  # not in the schema: left out, and said so once
    assert "ok" in device.call("send_telemetry", {"ts": 1700000000000, "values": values})
    t = sim.telemetry(pdev["id"])
    assert t == {
        "temperature": [{"ts": 1700000000000, "value": 21.5}],
        "humidity": [{"ts": 1700000000000, "value": 40}],
        "airTemp": [{"ts": 1700000000000, "value": 3.0}],  # ThingsBoard's lowerCamelCase
        "history": [{"ts": 1700000000000, "value": [1, 2]}],
    }
    log, _ = device.event({"event": "log"})
    assert "bogus" in log["text"] and "not sent" in log["text"]


def test_default_schema_flat_telemetry_and_no_presence_fields(sim, driver):
    schema = 'syntax = "proto3"; message T { double a = 1; optional double b = 2; }'
    p = protobuf_profile(sim, "flat", telemetry=schema)
    dev = sim.create_device("flat", token="FLAT_TOKEN", profile_id=p["id"]["id"])
    desc = profile({"telemetry": schema})[0]
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, token="FLAT_TOKEN", schema=desc)
    assert "ok" in driver.call("send_telemetry", {"b": 1.5})
    # a field without presence is printed with its default (Java's includingDefaultValueFields)
    t = sim.telemetry(dev["id"])
    assert {k: v[0]["value"] for k, v in t.items()} == {"a": 0.0, "b": 1.5}


def test_client_attributes(sim, pdev, device):
    assert "ok" in device.call("send_attributes", {"fw": "v1.0", "mac": "aa:bb", "free_heap": 9})
    got = sim.attributes(pdev["id"], "CLIENT_SCOPE")
    assert got == {"fw": "v1.0", "mac": "aa:bb", "freeHeap": 9}


def test_request_attributes_every_value_type(sim, pdev, device):
    shared = {"interval": 30, "mode": "eco", "gain": 2.5, "on": True, "cfg": {"a": [1]}}
    sim.set_shared(pdev["id"], shared)
    device.call("send_attributes", {"fw": "v1.0"})
    r = device.call("request_attributes", ["fw"], ["interval", "mode", "gain", "on", "cfg"])
    assert r["ok"] == {"client": {"fw": "v1.0"}, "shared": shared}
    r = device.call("request_attributes", None, ["nothing"])  # 4.04
    assert r["ok"] == {"client": {}, "shared": {}}


def test_shared_attribute_subscription_keys_all_and_deleted(sim, pdev, device):
    sim.set_shared(pdev["id"], {"interval": 30})
    device.ok("observe", keys=["interval"], rpc=False)
    first, _ = device.event({"event": "attrs"})
    assert first["data"] == {"interval": 30}
    sim.set_shared(pdev["id"], {"interval": 5, "other": "x"})
    _, seen = device.event({"event": "attrs", "data": {"interval": 5, "other": "x"}})
    assert {"event": "attr", "interval": 5} in seen
    sim.delete_shared(pdev["id"], ["interval"])
    device.event({"event": "attr", "interval": None})
    device.event({"event": "attrs", "data": {"deleted": ["interval"]}})


def test_server_rpc_with_thingsboards_default_rpc_schemas(sim, pdev, device):
    device.ok("observe")
    # params as JSON text (the default schema's params is a string); the reply, whose keys are
    # not fields of RpcResponseMsg, goes as JSON text in its payload field
    reply = sim.rpc(pdev["id"], "setGpio", '{"pin": 26, "value": 1}')
    assert json.loads(reply["payload"]) == {"echo": '{"pin": 26, "value": 1}'}
    assert json.loads(sim.rpc(pdev["id"], "fail", 7)["payload"]) == {"error": "asked to fail"}


def test_rpc_params_the_schema_cannot_take_fail_and_the_device_resubscribes(sim, pdev, device):
    device.ok("observe")
    with pytest.raises(RpcFailed, match="Failed to convert"):
        sim.rpc(pdev["id"], "setGpio", {"pin": 26})  # an object for a string field
    device.ok("wait_resubscribed", count=1)  # the 2.02 ended the relation
    reply = sim.rpc(pdev["id"], "ping", "1")
    assert json.loads(reply["payload"]) == {"echo": "1"}


def test_server_rpc_resent_on_resubscribe_runs_once(sim, pdev, device):
    device.ok("observe")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=sim.rpc(pdev["id"], "slow", "1500")))
    t.start()
    device.event({"event": "rpc", "method": "slow"})
    device.ok("reconnected")
    t.join(20)
    assert json.loads(result["r"]["payload"]) == {"slept": "1500"}
    assert device.ok("stats")["device"]["rpc_duplicate"] >= 1


def test_client_side_rpc(sim, pdev, device):
    r = device.call("send_rpc_call", "getTime")
    assert r["ok"]["time"] > 1700000000000
    r = device.call("send_rpc_call", "echo", {"a": 1})
    assert r["ok"] == {"a": 1}


def test_claim(sim, pdev, device):
    assert "ok" in device.call("claim", "s3cret", 60000)
    claim = sim.call(sim.store.claim, pdev["id"])
    assert claim["secret"] == "s3cret"


def test_provision(sim, driver):
    p = protobuf_profile(sim, "field", key="K")
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, schema=SCHEMA)
    r = driver.send("provision", args=["dev-new", "K", "S"])
    assert r["ok"]["status"] == "SUCCESS" and r["ok"]["credentialsType"] == "ACCESS_TOKEN"
    new = sim.call(sim.store.device_by_token, r["ok"]["credentialsValue"])
    assert new["name"] == "dev-new" and new["profile_id"] == p["id"]["id"]
    r = driver.send("provision", args=["dev-new", "K", "S"])  # exists already
    assert r["error"] == "ProvisionError" and "FAILURE" in r["message"]
    r = driver.send("provision", args=["dev-x", "K", "WRONG"])
    assert r["error"] == "ProvisionError" and "NOT_FOUND" in r["message"]
