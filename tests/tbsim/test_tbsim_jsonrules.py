# The JSON rules of transport reference §8.1, on tbsim's parser directly.
import pytest
from tbsim_helpers import ROOT  # noqa: F401  (puts the repository on sys.path)

from tools.tbsim import jsonrules


def test_lenient_parser_accepts_what_gson_accepts():
    assert jsonrules.parse("{temperature:25}") == {"temperature": 25}
    assert jsonrules.parse("{'a': 'b'; c = d, e => true}") == {"a": "b", "c": "d", "e": True}
    assert jsonrules.parse('/* c */ {"x": [1, 2.5, null]} # end') == {"x": [1, 2.5, None]}


@pytest.mark.parametrize("bad", ["", "   ", '{"a":1} x', '{"a" 1}', "[1,", '{"a":"b'])
def test_parser_rejects_garbage(bad):
    with pytest.raises(jsonrules.JsonError):
        jsonrules.parse(bad)


def test_values_are_cast_and_nulls_skipped():
    got = jsonrules.key_values(
        {"s": "25", "d": "25.5", "t": "text", "n": None, "f": 1.0, "b": True, "o": {"k": 1}}
    )
    assert got == {"s": 25, "d": 25.5, "t": "text", "f": 1.0, "b": True, "o": {"k": 1}}
    assert isinstance(got["f"], float) and isinstance(got["s"], int)
    assert jsonrules.cast(2**70) == str(2**70)  # too big for a long: a string


def test_telemetry_shapes():
    assert jsonrules.telemetry('{"a":1}', ts=7) == [(7, {"a": 1})]
    assert jsonrules.telemetry('{"ts":5,"values":{"a":1}}', ts=7) == [(5, {"a": 1})]
    mixed = '[{"a":1},{"ts":"6","values":{"b":2}}]'
    assert jsonrules.telemetry(mixed, ts=7) == [(7, {"a": 1}), (6, {"b": 2})]
    # only both ts and values make the timestamped form
    assert jsonrules.telemetry('{"ts":5,"v":1}', ts=7) == [(7, {"ts": 5, "v": 1})]
    with pytest.raises(jsonrules.JsonError):
        jsonrules.telemetry("42")


def test_attributes_must_be_an_object():
    assert jsonrules.attributes("{fw:'1.0'}") == {"fw": 1.0}
    with pytest.raises(jsonrules.JsonError):
        jsonrules.attributes('[{"a":1}]')
