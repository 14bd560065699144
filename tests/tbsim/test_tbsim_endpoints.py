# Every device endpoint of transport reference §1.2 and the codes of §2.1, through clients we
# did not write: aiocoap and libcoap's coap-client-notls.
import aiocoap
import pytest
from tbsim_helpers import aiocoap_request, coap_client, http

from tools.tbsim.wire import Message, codec

T = "/api/v1/TOKEN_ONE"


def test_post_telemetry_stores_cast_values(sim, device):
    code, payload, _ = aiocoap_request(sim, aiocoap.POST, T + "/telemetry", b'{t:"21.5",n:7}')
    assert (code, payload) == ("2.01", b"")
    got = sim.telemetry(device["id"])
    assert got["t"][0]["value"] == 21.5 and got["n"][0]["value"] == 7


def test_post_telemetry_with_libcoap_and_ts_values(sim, device):
    body = '[{"ts":1000,"values":{"k":1}},{"ts":2000,"values":{"k":2}}]'
    out = coap_client(sim, "-m", "post", "-e", body, "coap://HOST" + T + "/telemetry")
    assert "4." not in out and "5." not in out
    status, series = http(
        sim,
        "GET",
        "/api/plugins/telemetry/DEVICE/%s/values/timeseries?keys=k&startTs=0&endTs=3000"
        "&useStrictDataTypes=true" % device["id"],
    )
    assert status == 200 and series == {"k": [{"ts": 2000, "value": 2}, {"ts": 1000, "value": 1}]}


def test_post_attributes_are_client_scope(sim, device):
    code, _, _ = aiocoap_request(sim, aiocoap.POST, T + "/attributes", b'{"mode":"eco"}')
    assert code == "2.01"
    assert sim.attributes(device["id"], "CLIENT_SCOPE") == {"mode": "eco"}
    assert sim.attributes(device["id"], "SHARED_SCOPE") == {}


@pytest.mark.parametrize(
    "path,payload",
    [
        (T + "/telemetry", b""),  # empty body
        (T + "/telemetry", b'{"a":1} trailing'),
        (T + "/telemetry", b"42"),
        (T + "/attributes", b'[{"a":1}]'),  # attributes must be an object
        (T + "/nosuch", b"{}"),  # unknown feature
        ("/api/v1", b"{}"),  # no feature
        (T + "/claim", b"{bad"),
    ],
)
def test_bad_body_or_feature_is_4_00(sim, device, path, payload):
    assert aiocoap_request(sim, aiocoap.POST, path, payload)[0] == "4.00"


@pytest.mark.parametrize(
    "method,path,code",
    [
        (aiocoap.POST, "/api/v1/WRONG/telemetry", "4.01"),  # unknown token
        (aiocoap.POST, "/api/v1/telemetry", "4.01"),  # X.509 form without DTLS
        (aiocoap.POST, "/api/v1/rpc/5", "4.01"),
        (aiocoap.GET, "/api/v1/WRONG/attributes", "4.01"),
        (aiocoap.GET, T + "/telemetry", "4.00"),
        (aiocoap.GET, T + "/rpc", "4.00"),  # rpc without Observe
        (aiocoap.GET, T + "/claim", "4.00"),
        (aiocoap.GET, "/api", "4.05"),
        (aiocoap.PUT, T + "/telemetry", "4.05"),
        (aiocoap.DELETE, T + "/attributes", "4.05"),
        (aiocoap.GET, "/api/v2/x/telemetry", "4.04"),
        (aiocoap.GET, "/foo", "4.04"),
        (aiocoap.GET, T + "/firmware", "4.00"),  # the documented URL that does not exist
    ],
)
def test_error_codes(sim, device, method, path, code):
    assert aiocoap_request(sim, method, path, b"{}" if method != aiocoap.GET else b"")[0] == code


def test_error_codes_with_libcoap(sim, device):
    assert "4.01" in coap_client(sim, "-m", "get", "coap://HOST/api/v1/WRONG/attributes")
    assert "4.05" in coap_client(sim, "-m", "put", "-e", "{}", "coap://HOST" + T + "/telemetry")
    assert "4.04" in coap_client(sim, "-m", "get", "coap://HOST/nothing/here")


def test_read_attributes(sim, device):
    did = device["id"]
    aiocoap_request(sim, aiocoap.POST, T + "/attributes", b'{"c1":1,"c2":"x"}')
    sim.set_shared(did, {"s1": 41.0, "s2": True})
    code, payload, opt = aiocoap_request(sim, aiocoap.GET, T + "/attributes")
    assert code == "2.05" and opt.content_format == 50
    assert payload == b'{"client":{"c1":1,"c2":"x"},"shared":{"s1":41.0,"s2":true}}'
    _, payload, _ = aiocoap_request(sim, aiocoap.GET, T + "/attributes", query=["sharedKeys=s2"])
    assert payload == b'{"shared":{"s2":true}}'
    _, payload, _ = aiocoap_request(
        sim, aiocoap.GET, T + "/attributes", query=["clientKeys=c2,nope", "sharedKeys=s1"]
    )
    assert payload == b'{"client":{"c2":"x"},"shared":{"s1":41.0}}'
    code, payload, opt = aiocoap_request(
        sim, aiocoap.GET, T + "/attributes", query=["sharedKeys=missing"]
    )
    assert (code, payload, opt.content_format) == ("4.04", b"", 50)


def test_read_attributes_with_libcoap_query(sim, device):
    sim.set_shared(device["id"], {"a": 1, "b": 2})
    out = coap_client(sim, "-m", "get", "coap://HOST" + T + "/attributes?sharedKeys=b")
    assert '{"shared":{"b":2}}' in out


def test_read_attributes_nothing_stored_is_4_04(sim, device):
    assert aiocoap_request(sim, aiocoap.GET, T + "/attributes")[0] == "4.04"


def test_packed_query_loses_its_parameters(udp, sim, device):
    # one Uri-Query option "a&b" is one parameter, so the key filter is lost (§1.1)
    sim.set_shared(device["id"], {"a": 1, "b": 2})
    req = udp.request(codec.GET, T + "/attributes", query=["sharedKeys=a&clientKeys=b"])
    resp = udp.response(req)
    assert resp.payload == b'{"shared":{"a":1,"b":2}}'


def test_whole_path_in_one_uri_path_option(udp, sim, device):
    msg = Message(
        codec.CON,
        codec.POST,
        udp.next_mid(),
        b"t1",
        [(codec.URI_PATH, T + "/telemetry")],
        b"{z:1}",
    )
    udp.send(msg)
    assert udp.response(msg).code == codec.CREATED
    assert sim.telemetry(device["id"])["z"][0]["value"] == 1


def test_feature_is_case_insensitive_and_trailing_segments_ignored(sim, device):
    code, _, _ = aiocoap_request(sim, aiocoap.POST, T + "/TELEMETRY/extra", b'{"q":1}')
    assert code == "2.01" and "q" in sim.telemetry(device["id"])


def test_client_side_rpc(sim, device):
    code, payload, opt = aiocoap_request(
        sim, aiocoap.POST, T + "/rpc", b'{"method":"echo","params":{"x":[1,2]}}'
    )
    assert (code, payload, opt.content_format) == ("2.05", b'{"x":[1,2]}', 50)
    code, payload, _ = aiocoap_request(sim, aiocoap.POST, T + "/rpc", b'{"method":"getTime"}')
    assert code == "2.05" and payload.startswith(b'{"time":')
    _, payload, _ = aiocoap_request(sim, aiocoap.POST, T + "/rpc", b'{"method":"nope"}')
    assert payload == b'{"error":"Unsupported method: nope"}'
    # no method (an NPE in TB) and bad JSON escape as 5.00
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc", b'{"params":1}')[0] == "5.00"
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc", b"{bad")[0] == "5.00"


def test_rpc_reply_body_rules(sim, device):
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc/3", b"")[0] == "5.00"
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc/3", b"[1]")[0] == "5.00"
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc/x", b"{}")[0] == "4.00"
    # a reply to an RPC nobody is waiting for is still accepted
    assert aiocoap_request(sim, aiocoap.POST, T + "/rpc/3", b'{"ok":1}')[0] == "2.01"


def test_claim_stores_secret_and_duration(sim, device):
    assert aiocoap_request(sim, aiocoap.POST, T + "/claim", b"")[0] == "2.01"
    assert sim.call(sim.store.claim, device["id"])["secret"] == ""
    body = b'{"secretKey":"s3cr3t","durationMs":60000}'
    assert aiocoap_request(sim, aiocoap.POST, T + "/claim", body)[0] == "2.01"
    status, reply = http(sim, "POST", "/api/customer/device/dev-1/claim", {"secretKey": "bad"})
    assert (status, reply["response"]) == (400, "FAILURE")
    status, reply = http(sim, "POST", "/api/customer/device/dev-1/claim", {"secretKey": "s3cr3t"})
    assert (status, reply["response"]) == (200, "SUCCESS")
    status, reply = http(sim, "POST", "/api/customer/device/dev-1/claim", {"secretKey": "s3cr3t"})
    assert (status, reply["response"]) == (400, "CLAIMED")


def test_well_known_core(sim):
    code, payload, opt = aiocoap_request(sim, aiocoap.GET, "/.well-known/core")
    assert code == "2.05" and b"</api>" in payload and opt.content_format == 40


def test_telemetry_posts_count_messages_not_retransmissions(sim, udp, device):
    # what the rule engine gets: a retransmission of a message ID is answered from the cache
    req = udp.request(codec.POST, "/api/v1/TOKEN_ONE/telemetry", b'{"t": 1}', token=b"t1")
    udp.send(req)  # no answer yet: the same message again (answered again from the cache)
    assert udp.response(req).code == codec.CREATED
    # a new message ID; its own token, so the first one's second answer is not taken for it
    req = udp.request(codec.POST, "/api/v1/TOKEN_ONE/telemetry", b'{"t": 2}', token=b"t2")
    assert udp.response(req).code == codec.CREATED
    assert sim.telemetry_posts(device["id"]) == 2
