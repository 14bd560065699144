# protoschema: ThingsBoard device-profile .proto schemas for the board and for tbsim.
# One parser (parser.py, with ThingsBoard's rules) feeds both: description() makes the compact
# form lib/protobuf reads on the device, descriptor() a FileDescriptorProto for the PyPI
# protobuf package (tbsim, tests). `python -m tools.protoschema --help` is the command line.
from pathlib import Path

from .parser import SCALARS, SchemaError, json_name, parse

__all__ = ["SchemaError", "parse", "json_name", "profile", "description", "message_class"]

ROLES = ("telemetry", "attributes", "rpc_request", "rpc_response")
# ThingsBoard's defaults (the UI's for telemetry and attributes, the server's for RPC)
DEFAULTS = {
    "telemetry": """syntax = "proto3";
package telemetry;

message SensorDataReading {
  optional double temperature = 1;
  optional double humidity = 2;
  InnerObject innerObject = 3;

  message InnerObject {
    optional string key1 = 1;
    optional bool key2 = 2;
    optional double key3 = 3;
    optional int32 key4 = 4;
    optional string key5 = 5;
  }
}
""",
    "attributes": """syntax = "proto3";
package attributes;

message SensorConfiguration {
  optional string firmwareVersion = 1;
  optional string serialNumber = 2;
}
""",
    "rpc_request": """syntax = "proto3";
package rpc;

message RpcRequestMsg {
  optional string method = 1;
  optional int32 requestId = 2;
  optional string params = 3;
}
""",
    "rpc_response": """syntax = "proto3";
package rpc;

message RpcResponseMsg {
  optional string payload = 1;
}
""",
}
# the profile JSON keys of each schema (ProtoTransportPayloadConfiguration)
PROFILE_KEYS = {
    "telemetry": "deviceTelemetryProtoSchema",
    "attributes": "deviceAttributesProtoSchema",
    "rpc_request": "deviceRpcRequestProtoSchema",
    "rpc_response": "deviceRpcResponseProtoSchema",
}
# ThingsBoard's own messages (attribute notifications and reads, client RPC, claim,
# provisioning): one file, so one parse serves the board (lib/thingsboard/tbproto.py) and tbsim
THINGSBOARD_PROTO = (Path(__file__).parent / "thingsboard.proto").read_text()

REPEATED, PACKED, PRESENCE = 1, 2, 4  # as lib/protobuf/message.py reads them
_INTEGERS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64"}
_INTEGERS |= {"fixed32", "fixed64", "sfixed32", "sfixed64"}


def _flags(f, fld):
    flags = 0
    if fld.label == "repeated":
        flags |= REPEATED
        if fld.type in SCALARS and fld.type not in ("string", "bytes") or fld.type in f.enums:
            flags |= PACKED
    elif fld.label == "optional" or fld.oneof or fld.type in f.messages:
        flags |= PRESENCE
    return flags


def description(f, prefix=""):
    """File -> {"messages": {...}, "enums": {...}}, the names prefixed with prefix."""

    def name(t):
        return t if t in SCALARS else prefix + t

    messages = {
        prefix + m.full_name: [
            [fld.number, fld.name, name(fld.type), _flags(f, fld)] for fld in m.fields
        ]
        for m in f.messages.values()
    }
    enums = {prefix + e.full_name: dict(e.values) for e in f.enums.values()}
    return {"messages": messages, "enums": enums}


def profile(schemas):
    """{role: .proto text} (roles missing: ThingsBoard's defaults) -> (description, warnings).
    The description names each role's root message (the last top-level one, as ThingsBoard
    takes it); raises SchemaError for a schema the board could not work with."""
    desc = {"messages": {}, "enums": {}}
    warnings = []
    for role in ROLES:
        text = schemas.get(role) or DEFAULTS[role]
        f = parse(text, role + " schema")
        part = description(f, role + ":")
        desc["messages"].update(part["messages"])
        desc["enums"].update(part["enums"])
        root = f.messages[f.root()]
        desc[role] = role + ":" + root.full_name
        fields = {fld.name: fld for fld in root.fields}
        if role in ("telemetry", "attributes"):
            for m in f.messages.values():
                for fld in m.fields:
                    if json_name(fld.name) != fld.name:
                        warnings.append(
                            "%s: ThingsBoard stores field %s as %s (its JSON name)"
                            % (role, fld.name, json_name(fld.name))
                        )
        elif role == "rpc_request":
            for need, types in (("method", {"string"}), ("requestId", _INTEGERS)):
                fld = fields.get(need)
                if fld is None or fld.type not in types or fld.label == "repeated":
                    raise SchemaError(
                        "rpc_request schema: %s needs a field %s (%s), which ThingsBoard fills"
                        % (root.full_name, need, "string" if need == "method" else "an integer")
                    )
            if "params" not in fields:
                warnings.append("rpc_request: %s has no params field" % root.full_name)
        elif not any(fld.type == "string" and fld.label != "repeated" for fld in root.fields):
            warnings.append(
                "rpc_response: %s has no string field: replies whose keys are not its fields"
                " cannot be sent" % root.full_name
            )
    return desc, warnings


def thingsboard():
    """The board's description of ThingsBoard's fixed messages (lib/thingsboard/tbproto.py)."""
    return description(parse(THINGSBOARD_PROTO, "thingsboard.proto"))


# --- the PyPI protobuf side (tbsim, tests): imported only when used

_TYPES = {
    "double": 1,
    "float": 2,
    "int64": 3,
    "uint64": 4,
    "int32": 5,
    "fixed64": 6,
    "fixed32": 7,
    "bool": 8,
    "string": 9,
    "bytes": 12,
    "uint32": 13,
    "sfixed32": 15,
    "sfixed64": 16,
    "sint32": 17,
    "sint64": 18,
}


def descriptor(f, file_name):
    """File -> google.protobuf.descriptor_pb2.FileDescriptorProto. json_name is left unset,
    as ThingsBoard's dynamic schema leaves it, so protobuf derives lowerCamelCase names."""
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=f.package, syntax="proto3")
    protos = {}
    for full, m in f.messages.items():
        parent = full.rpartition(".")[0]
        short = full.rpartition(".")[2]
        owner = protos.get(parent)
        dp = (owner.nested_type if owner is not None else fdp.message_type).add(name=short)
        protos[full] = dp
        for oneof in m.oneofs:
            dp.oneof_decl.add(name=oneof)
        for fld in m.fields:
            fp = dp.field.add(name=fld.name, number=fld.number)
            fp.label = 3 if fld.label == "repeated" else 1
            if fld.type in _TYPES:
                fp.type = _TYPES[fld.type]
            else:
                fp.type = 11 if fld.type in f.messages else 14
                fp.type_name = "." + fld.type
            if fld.oneof:
                fp.oneof_index = m.oneofs.index(fld.oneof)
        for fld, fp in zip(m.fields, dp.field):
            if fld.label == "optional":  # proto3 optional: a synthetic oneof, after the real
                fp.proto3_optional = True
                fp.oneof_index = len(dp.oneof_decl)
                dp.oneof_decl.add(name="_" + fld.name)
    for full, e in f.enums.items():
        parent = full.rpartition(".")[0]
        owner = protos.get(parent)
        ep = (owner.enum_type if owner is not None else fdp.enum_type).add(
            name=full.rpartition(".")[2]
        )
        for k, v in e.values.items():
            ep.value.add(name=k, number=v)
    return fdp


def message_class(text, name=None, what="schema"):
    """.proto text -> the PyPI protobuf message class of its root (or the named) message."""
    from google.protobuf import descriptor_pool, message_factory

    f = parse(text, what)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor(f, "schema.proto"))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name or f.root()))
