# lib/thingsboard on the unix port against tbsim: every SDK call, subscriptions kept alive,
# named errors. Assertions look at what tbsim stored or sent and what the device reported.
import hashlib
import threading

from tools.tbsim import ota

from .conftest import TOKEN


def test_send_telemetry_object_array_and_timestamped(sim, dev, device):
    assert "ok" in device.call("send_telemetry", {"temperature": 21.5})
    assert "ok" in device.call(
        "send_telemetry", [{"humidity": 40}, {"ts": 1000, "values": {"p": 1}}]
    )
    assert "ok" in device.call("send_telemetry", {"ts": 1700000000000, "values": {"rssi": -60}})
    t = sim.telemetry(dev["id"])
    assert t["temperature"][0]["value"] == 21.5 and t["humidity"][0]["value"] == 40
    assert t["p"][0] == {"ts": 1000, "value": 1}
    assert t["rssi"][0] == {"ts": 1700000000000, "value": -60}


def test_send_attributes_are_client_scope(sim, dev, device):
    assert "ok" in device.call("send_attributes", {"fw": "v1.0", "mac": "aa:bb"})
    assert sim.attributes(dev["id"], "CLIENT_SCOPE") == {"fw": "v1.0", "mac": "aa:bb"}


def test_request_attributes(sim, dev, device):
    sim.set_shared(dev["id"], {"interval": 30, "mode": "eco"})
    device.call("send_attributes", {"fw": "v1.0"})
    r = device.call("request_attributes", ["fw"], ["interval", "missing"])
    assert r["ok"] == {"client": {"fw": "v1.0"}, "shared": {"interval": 30}}
    r = device.call("request_attributes", None, ["nothing"])  # 4.04 from the server
    assert r["ok"] == {"client": {}, "shared": {}}


def test_shared_attribute_subscription_keys_all_and_deleted(sim, dev, device):
    sim.set_shared(dev["id"], {"interval": 30})
    device.ok("observe", keys=["interval"], rpc=False)
    first, _ = device.event({"event": "attrs"})
    assert first["data"] == {"interval": 30}  # the snapshot of the first response
    sim.set_shared(dev["id"], {"interval": 5, "other": 1})
    _, seen = device.event({"event": "attrs", "data": {"interval": 5, "other": 1}})
    assert {"event": "attr", "interval": 5} in seen
    sim.delete_shared(dev["id"], ["interval"])
    device.event({"event": "attr", "interval": None})
    device.event({"event": "attrs", "data": {"deleted": ["interval"]}})


def test_server_rpc_handler_replies_and_errors(sim, dev, device):
    device.ok("observe")
    assert sim.rpc(dev["id"], "setGpio", {"pin": 26, "value": 1}) == {
        "echo": {"pin": 26, "value": 1}
    }
    assert sim.rpc(dev["id"], "fail", None) == {"error": "asked to fail"}


def test_server_rpc_resent_on_resubscribe_runs_once(sim, dev, device):
    # ThingsBoard re-sends pending RPCs on every RPC subscribe: the device de-duplicates by id
    device.ok("observe")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=sim.rpc(dev["id"], "slow", 1500)))
    t.start()
    device.event({"event": "rpc", "method": "slow"})
    device.ok("reconnected")  # renews both observations while the RPC is still running
    t.join(20)
    assert result["r"] == {"slept": 1500}
    stats = device.ok("stats")
    assert stats["device"]["rpc_duplicate"] >= 1 and stats["device"]["resubscribe"] >= 2
    runs = [e for e in list(device.events.queue) if e.get("method") == "slow"]
    assert runs == []  # no second execution event after the first


def test_client_side_rpc(device):
    r = device.call("send_rpc_call", "getTime")
    assert r["ok"]["time"] > 1700000000000
    r = device.call("send_rpc_call", "echo", {"a": 1})
    assert r["ok"] == {"a": 1}


def test_client_side_rpc_timeout(sim, dev, device):
    sim.core.rpc_handler = lambda device, method, params: None  # the rule chain never answers
    r = device.call("send_rpc_call", "getTime", None, 500)
    assert r["error"] == "CoapTimeout" and "500 ms" in r["message"]


def test_claim(sim, dev, device):
    assert "ok" in device.call("claim", "s3cret", 60000)
    claim = sim.call(sim.store.claim, dev["id"])
    assert claim["secret"] == "s3cret"


def test_named_errors(sim, dev, driver):
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, token="WRONG_TOKEN")
    r = driver.call("send_telemetry", {"a": 1})
    assert r["error"] == "Unauthorized" and "4.01" in r["message"] and "token" in r["message"]
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port, token=TOKEN)
    r = driver.call("send_attributes", [1, 2])  # attributes must be an object
    assert r["error"] == "BadRequest" and "4.00" in r["message"]


def test_observations_renewed_after_silent_server_restart(sim, dev, driver):
    driver.ok(
        "connect",
        host="127.0.0.1",
        port=sim.coap_port,
        token=dev["token"],
        device={"observe_refresh": 1000},
    )
    driver.ok("observe")
    sim.drop_observes()  # the server forgot every relation and says nothing
    driver.ok("wait_resubscribed", count=2)
    assert sim.rpc(dev["id"], "echo2", {"x": 1}) == {"echo": {"x": 1}}


def test_reconnected_renews_and_rpc_works(sim, dev, device):
    device.ok("observe")
    device.ok("reconnected")
    device.ok("wait_resubscribed", count=2)
    assert sim.rpc(dev["id"], "ping", 1) == {"echo": 1}


def test_provision(sim, driver):
    sim.call(
        sim.store.save_profile,
        {
            "name": "p",
            "provision_type": "ALLOW_CREATE_NEW_DEVICES",
            "provision_key": "KEY",
            "provision_secret": "SECRET",
        },
    )
    driver.ok("connect", host="127.0.0.1", port=sim.coap_port)
    r = driver.send("provision", args=["dev-new", "KEY", "SECRET"])
    assert r["ok"]["status"] == "SUCCESS" and r["ok"]["credentialsType"] == "ACCESS_TOKEN"
    token = r["ok"]["credentialsValue"]
    assert sim.call(sim.store.device_by_token, token)["name"] == "dev-new"
    r = driver.send("provision", args=["dev-new", "KEY", "SECRET"])  # exists already
    assert r["error"] == "ProvisionError" and "FAILURE" in r["message"]
    r = driver.send("provision", args=["dev-x", "KEY", "WRONG"])
    assert r["error"] == "ProvisionError" and "NOT_FOUND" in r["message"]


def test_firmware_chunks(sim, dev, device):
    data = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: 3 chunks of 1024, last 516
    pkg = sim.call(
        sim.store.save_ota,
        {
            "type": "FIRMWARE",
            "title": "fw",
            "version": "2.0",
            "data": data,
            "size": len(data),
            "checksum_algorithm": "SHA256",
            "checksum": ota.checksum(data, "SHA256"),
        },
    )
    sim.call(sim.core.assign_ota, dev["id"], "FIRMWARE", pkg["id"])
    r = device.send("chunks", title="fw", version="2.0", size=1024, count=4)
    assert r["ok"]["lengths"] == [1024, 1024, 516, "CoapTimeout"]
    assert r["ok"]["sha256"] == hashlib.sha256(data).hexdigest()
