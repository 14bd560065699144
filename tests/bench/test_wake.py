# bench/wake.py's parsing and summaries: the firmware's wake line, what tbsim saw of a wake from
# its datagram stamps, the medians, and the model's verdicts. No timing, no device.
import importlib.util
from pathlib import Path

from tools.tbsim.faults import Direction
from tools.tbsim.wire import Message, codec

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("wake", ROOT / "bench" / "wake.py")
wake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wake)


def test_importing_it_leaves_tbsim_alone():
    assert Direction.pass_datagram is wake._pass


def test_the_wake_line_parses():
    line = "I sleep: awake 868 ms (CoAP 826 ms), sleeping 2132 ms"
    assert wake.parse_wake(line) == {"awake_ms": 868, "coap_ms": 826, "sleep_ms": 2132}
    assert wake.parse_wake("I app: firmware coapboard 0.1.0 on unix-sim") is None
    assert wake.parse_wake(None) is None


def _get(observe, mid):
    opts = [(codec.OBSERVE, observe), (11, b"rpc")]
    return Message(codec.CON, codec.GET, mid, b"\x01\x02", opts).encode()


def test_the_span_runs_from_the_first_datagram_in_and_finds_the_deregistration():
    ack = Message(codec.ACK, codec.EMPTY, 7).encode()
    stamps = [
        (9.0, "out", ack),  # before the wake's first datagram in: not the wake's
        (10.0, "in", _get(0, 1)),
        (10.05, "out", ack),
        (10.3, "in", _get(1, 2)),
        (10.8, "out", ack),
    ]
    span, dereg = wake.span_ms(stamps)
    assert round(span) == 800 and round(dereg) == 500
    assert wake.span_ms(stamps[:3])[1] is None
    assert wake.span_ms([]) == (None, None)
    assert wake.span_ms([(1.0, "in", b"\xff")])[0] == 0  # not CoAP: counted, not decoded


def test_summaries_take_the_median_and_the_max():
    assert wake.summary([3, None, 1, 2]) == (2, 3)
    assert wake.summary([None]) == (None, None)
    ws = [
        {"awake_ms": 900, "coap_ms": 800, "tbsim_ms": 790, "dereg_ms": 500, "in": 7, "out": 5,
         "datagrams": 12, "late": 0, "rpc": "SUCCESSFUL"},
        {"awake_ms": 950, "coap_ms": 850, "tbsim_ms": 840, "dereg_ms": 510, "in": 8, "out": 5,
         "datagrams": 13, "late": 2, "rpc": "SENT"},
    ]  # fmt: skip
    f = wake.case_summary(ws)
    assert f["coap_ms"] == (825, 850) and f["datagrams"] == (12.5, 13)
    assert (f["rpcs_answered"], f["rpcs"], f["wakes"]) == (1, 2, 2)
    line = wake.row(50, "one pending RPC", f)
    assert line.startswith("| 50 ms | one pending RPC (1 of 2 RPCs answered in their wake) |")
    assert line.count("|") == 9


def test_the_model_is_fed_the_medians():
    days = wake.battery(200, 10)
    assert len(days) == len(wake.energy.INTERVALS_S) and days == sorted(days)
    limit, fast, at_10, lasts = wake.targets(240, 10)
    assert limit == 250 and fast and at_10 == wake.energy.battery_days(600, 240, 10)
    assert not wake.targets(260, 10)[1]
    assert lasts == (at_10 >= 730)
