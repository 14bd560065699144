# tools/protoschema: ThingsBoard's schema rules with a clear message for each refusal, the
# board's schema file from .proto files or a device profile, and the generated
# lib/thingsboard/tbproto.py kept in step with tools/protoschema/thingsboard.proto.
import json
import subprocess
import sys

import pytest

from tools.protoschema import (
    DEFAULTS,
    SchemaError,
    json_name,
    message_class,
    parse,
    profile,
    thingsboard,
)
from tools.protoschema.__main__ import main, tbproto_module

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
HEAD = 'syntax = "proto3";\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ("message M {}", "proto3 only"),
        ('syntax = "proto2"; message M {}', "proto3 only"),
        (HEAD + 'import "x.proto"; message M {}', "imports are not supported"),
        (HEAD + 'option java_package = "x"; message M {}', "file options"),
        (HEAD + "message M { option deprecated = true; }", "message options"),
        (HEAD + "message M { reserved 2; }", "reserved fields"),
        (HEAD + "message M { extensions 100 to 200; }", "extensions"),
        (HEAD + "message M { required int32 a = 1; }", "required fields"),
        (HEAD + "message M { int32 a = 1 [default = 3]; }", "default values"),
        (HEAD + "message M { map<string, int32> m = 1; }", "map fields"),
        (HEAD + "enum E { option allow_alias = true; A = 0; }", "enum options"),
        (HEAD + "enum E { A = 1; } message M {}", "first value must be 0"),
        (HEAD + "message M { int32 a = 1; string a = 2; }", "defined twice"),
        (HEAD + "message M { int32 a = 1; string b = 1; }", "share number 1"),
        (HEAD + "message M { Missing a = 1; }", "unknown type Missing"),
        (HEAD + "message M { int32 a = 0; }", "not 1-536870911"),
        (HEAD + "message M { int32 a = 19000; }", "reserved by protobuf"),
        (HEAD + "enum E { A = 0; }", "no message"),
        (HEAD + "service S {} message M {}", "services are not supported"),
        (HEAD + "message M { int32 a = 1 }", "expected ';'"),
    ],
)
def test_refused_with_the_line_and_the_reason(text, message):
    with pytest.raises(SchemaError, match=message) as e:
        parse(text, "telemetry schema")
    assert str(e.value).startswith("telemetry schema line ")


def test_nested_types_scoping_oneof_and_root():
    f = parse(
        HEAD
        + """package p;
        message A { message B { int32 x = 1; } B b = 1; }
        message C {
          A.B ab = 1; .p.A a = 2; oneof o { string s = 3; int64 n = 4; }
          enum K { Z = 0; } K k = 5; repeated K ks = 6;
        }"""
    )
    assert f.root() == "p.C"  # ThingsBoard uses the last top-level message
    types = {fld.name: fld.type for fld in f.messages["p.C"].fields}
    assert types == {
        "ab": "p.A.B",
        "a": "p.A",
        "s": "string",
        "n": "int64",
        "k": "p.C.K",
        "ks": "p.C.K",
    }
    C = message_class(HEAD + "package p; message A {} message C { A a = 1; }")
    assert C.DESCRIPTOR.full_name == "p.C"


def test_profile_defaults_roots_and_json_name_warnings():
    desc, warnings = profile({"telemetry": HEAD + "message T { optional double chip_temp = 1; }"})
    assert desc["telemetry"] == "telemetry:T"
    assert desc["attributes"] == "attributes:attributes.SensorConfiguration"
    assert desc["rpc_request"] == "rpc_request:rpc.RpcRequestMsg"
    assert desc["messages"]["telemetry:T"] == [[1, "chip_temp", "double", 4]]
    assert warnings == [
        "telemetry: ThingsBoard stores field chip_temp as chipTemp (its JSON name)"
    ]
    assert json_name("particles_03um") == "particles03um" and json_name("a_b_c") == "aBC"


def test_rpc_request_schema_needs_method_and_request_id():
    with pytest.raises(SchemaError, match="needs a field requestId"):
        profile({"rpc_request": HEAD + "message R { string method = 1; }"})


def test_json_names_as_protobuf_derives_them():
    M = message_class(HEAD + "message M { int32 chip_temp = 1; int32 a_1b = 2; }")
    assert [f.json_name for f in M.DESCRIPTOR.fields] == ["chipTemp", json_name("a_1b")]


def test_command_line_from_proto_files_and_from_a_profile(tmp_path, capsys):
    t = tmp_path / "t.proto"
    t.write_text(HEAD + "message T { optional double temperature = 1; }")
    out = tmp_path / "schema.json"
    assert main(["--telemetry", str(t), "-o", str(out)]) == 0
    desc = json.loads(out.read_text())
    assert desc["telemetry"] == "telemetry:T"
    conf = {"transportPayloadType": "PROTOBUF", "deviceTelemetryProtoSchema": t.read_text()}
    prof = {
        "profileData": {
            "transportConfiguration": {
                "type": "COAP",
                "coapDeviceTypeConfiguration": {"transportPayloadTypeConfiguration": conf},
            }
        }
    }  # noqa: E501
    (tmp_path / "p.json").write_text(json.dumps(prof))
    assert main(["--profile", str(tmp_path / "p.json")]) == 0
    assert json.loads(capsys.readouterr().out) == desc
    t.write_text(HEAD + "message T { map<string, int32> m = 1; }")
    assert main(["--telemetry", str(t)]) == 2
    assert "telemetry schema line 2: map fields are not supported" in capsys.readouterr().err


def test_tbproto_module_is_generated_from_thingsboard_proto():
    # the same schema as a fresh generation (the file itself is ruff-formatted)
    made, kept = {}, {}
    exec(tbproto_module(), made)
    exec((ROOT / "lib/thingsboard/tbproto.py").read_text(), kept)
    assert kept["SCHEMA"] == made["SCHEMA"] == thingsboard()


def test_thingsboards_default_schemas_parse():
    for role, text in DEFAULTS.items():
        assert message_class(text, what=role).DESCRIPTOR.fields


def test_runs_as_a_module():
    p = subprocess.run(
        [sys.executable, "-m", "tools.protoschema", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "--rpc-request" in p.stdout
