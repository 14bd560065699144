# python -m tools.protoschema: a ThingsBoard device profile's protobuf schemas -> the schema
# file the board loads (server.schema in config.json). Schemas come from .proto files, or from
# a device profile's JSON as ThingsBoard (or tbsim) returns it; any left out are ThingsBoard's
# defaults. A schema the board cannot use is refused with the line and the reason.
import argparse
import json
import sys

from . import PROFILE_KEYS, ROLES, SchemaError, profile, thingsboard

TBPROTO_HEAD = """\
# tbproto.py: ThingsBoard's fixed protobuf messages (attribute notifications and reads, client
# RPC, claim, provisioning) for lib/protobuf. Generated from tools/protoschema/thingsboard.proto
# by `python -m tools.protoschema --thingsboard` (then ruff format); do not edit.
"""


def profile_schemas(doc):
    # a device profile, its profileData, or its transportConfiguration -> {role: text}
    for key in ("profileData", "transportConfiguration", "coapDeviceTypeConfiguration"):
        if isinstance(doc, dict) and isinstance(doc.get(key), dict):
            doc = doc[key]
    conf = doc.get("transportPayloadTypeConfiguration", doc) if isinstance(doc, dict) else {}
    if not isinstance(conf, dict) or conf.get("transportPayloadType") != "PROTOBUF":
        raise SchemaError("the profile's payload type is not PROTOBUF")
    return {role: conf.get(key) for role, key in PROFILE_KEYS.items()}


def tbproto_module():
    return TBPROTO_HEAD + "SCHEMA = " + json.dumps(thingsboard(), separators=(",", ":")) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.protoschema", description=__doc__)
    ap.add_argument("--profile", help="a device profile JSON file (ThingsBoard's or tbsim's)")
    for role in ROLES:
        ap.add_argument("--" + role.replace("_", "-"), metavar="FILE.proto")
    ap.add_argument("-o", "--output", help="where to write the schema file (default: stdout)")
    ap.add_argument("--thingsboard", action="store_true", help="print lib/thingsboard/tbproto.py")
    args = ap.parse_args(argv)
    if args.thingsboard:
        sys.stdout.write(tbproto_module())
        return 0
    try:
        schemas = {}
        if args.profile:
            with open(args.profile) as f:
                schemas = profile_schemas(json.load(f))
        for role in ROLES:
            path = getattr(args, role)
            if path:
                with open(path) as f:
                    schemas[role] = f.read()
        desc, warnings = profile(schemas)
    except (SchemaError, OSError, ValueError) as e:
        print("protoschema: %s" % e, file=sys.stderr)
        return 2
    for w in warnings:
        print("protoschema: warning: %s" % w, file=sys.stderr)
    text = json.dumps(desc, separators=(",", ":")) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
