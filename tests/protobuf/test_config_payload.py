# firmware/config.py: server.payload and server.schema, and load() checking the schema file.
import json

import pytest

from firmware import config
from tools.protoschema import profile

BASE = {"server": {"host": "127.0.0.1"}, "token": "T"}


def cfg(**server):
    return dict(BASE, server=dict(BASE["server"], **server))


@pytest.mark.parametrize(
    "server, problems",
    [
        ({}, []),
        ({"payload": "json"}, []),
        ({"payload": "protobuf", "schema": "proto.json"}, []),
        ({"payload": "xml"}, ['server.payload: expected one of "json", "protobuf", got "xml"']),
        (
            {"payload": "protobuf"},
            ["server.schema: missing, expected the schema file of the protobuf profile"],
        ),
        (
            {"schema": "proto.json"},
            ['server.schema: only used with protobuf, expected payload: "protobuf"'],
        ),
        (
            {"payload": "protobuf", "schema": ""},
            ['server.schema: expected a non-empty string, got ""'],
        ),
    ],
)
def test_payload_and_schema_rules(server, problems):
    got = config.validate(cfg(**server))
    assert [p for p in got if p.startswith("server.")] == problems


def test_load_checks_the_schema_file_next_to_the_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg(payload="protobuf", schema="proto.json")))
    with pytest.raises(config.ConfigError) as e:
        config.load(str(path))
    (problem,) = e.value.problems
    assert problem.startswith("server.schema: cannot read %s/proto.json (" % tmp_path), problem
    (tmp_path / "proto.json").write_text('{"messages": {}}')
    with pytest.raises(config.ConfigError, match="has no telemetry message"):
        config.load(str(path))
    (tmp_path / "proto.json").write_text(json.dumps(profile({})[0]))
    assert config.load(str(path))["server"]["payload"] == "protobuf"
