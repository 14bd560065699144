# tbsim's transport rate limits (ThingsBoard's transport.rate_limits): per device and per
# tenant, "capacity:seconds" pairs; a message over a limit is answered 5.00 and not processed;
# the buckets refill evenly over their period. The buckets on a fake clock; the server through
# raw CoAP.
import pytest
from tbsim_helpers import Udp, make_sim

from tools.tbsim import __main__ as tbsim_cli
from tools.tbsim.ratelimit import RateLimitError, RateLimits, parse
from tools.tbsim.wire import codec


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_limits_parse_like_thingsboards():
    assert parse("10:1,300:60") == [(10, 1.0), (300, 60.0)]
    assert parse("") == [] and parse(None) == []
    for bad in ("10", "a:1", "0:1", "5:0", "10:1,x"):
        with pytest.raises(RateLimitError, match="capacity"):
            parse(bad)


def test_each_pair_is_a_bucket_refilled_evenly():
    clock = Clock()
    limits = RateLimits(device="2:1,3:60", clock=clock)
    assert [limits.check("a") for _ in range(3)] == [True, True, False]  # 2 a second
    clock.t += 0.5
    assert limits.check("a")  # half a second gave one token back
    assert not limits.check("a")  # ... and the minute's 3 are used
    clock.t += 20
    assert limits.check("a") and not limits.check("a")  # 20 s: one of the minute's 3
    assert limits.check("b")  # every device has its own buckets
    assert limits.refused == 3


def test_the_tenant_limit_counts_every_device():
    clock = Clock()
    limits = RateLimits(device="5:1", tenant="3:1", clock=clock)
    got = [limits.check(d) for d in ("a", "b", "c", "d")]
    assert got == [True, True, True, False]
    clock.t += 1
    assert limits.check("d")


def test_no_limits_by_default():
    limits = RateLimits()
    assert all(limits.check("a") for _ in range(10000)) and limits.refused == 0


def test_over_the_device_limit_the_server_answers_5_00_and_stores_nothing(tmp_path):
    sim = make_sim(tmp_path / "data", rate_limits={"device": "3:3600"})
    udp = Udp(sim)
    try:
        dev = sim.create_device("limited", token="LIMITED")
        codes = []
        for i in range(5):  # each its own ts: two stored in the same ms would be one row
            body = b'{"ts": %d, "values": {"n": %d}}' % (1000 + i, i)
            req = udp.request(codec.POST, "/api/v1/LIMITED/telemetry", body)
            codes.append(udp.response(req).code)
        assert codes == [codec.CREATED] * 3 + [codec.INTERNAL_SERVER_ERROR] * 2
        stored = sim.call(lambda: sim.store.history(dev["id"], ["n"], 0, 2**62, 100, True))
        assert [v["value"] for v in stored["n"]] == [0, 1, 2]
        # every message counts: attributes and subscriptions too
        req = udp.request(codec.GET, "/api/v1/LIMITED/attributes", query=["sharedKeys=x"])
        assert udp.response(req).code == codec.INTERNAL_SERVER_ERROR
        # an unknown token is refused before any limit
        req = udp.request(codec.POST, "/api/v1/NOBODY/telemetry", b'{"n": 9}')
        assert udp.response(req).code == codec.UNAUTHORIZED
        assert sim.limits.snapshot() == {"device": "3:3600", "tenant": "", "refused": 3}
    finally:
        udp.close()
        sim.stop()


def test_the_command_line_takes_the_limits_and_refuses_a_bad_one(capsys):
    a = tbsim_cli.parse_args(["--rate-limit-device", "10:1,300:60", "--rate-limit-tenant", "5:1"])
    assert (a.rate_limit_device, a.rate_limit_tenant) == ("10:1,300:60", "5:1")
    with pytest.raises(SystemExit):
        tbsim_cli.parse_args(["--rate-limit-device", "ten per second"])
    assert "--rate-limit-device" in capsys.readouterr().err
