# payload_size.py: bytes on the wire and heap per telemetry message, JSON against protobuf, for
# the same readings of the sample device (bench/payload_mp.py on the unix port), with a schema
# made by tools/protoschema from the .proto below.
# Usage: .venv/bin/python bench/payload_size.py [N]
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mpenv import MICROPYTHON, micropython_env  # noqa: E402
from tools.protoschema.__main__ import main as protoschema  # noqa: E402

TELEMETRY = """syntax = "proto3";
package coapboard;

message Telemetry {
  optional int64 ts = 1;
  Values values = 2;

  message Values {
    optional double chip_temp = 1;
    optional double temperature = 2;
    optional double air_temperature = 3;
    optional double air_humidity = 4;
    optional double soil = 5;
    optional int32 soil_raw = 6;
  }
}
"""
FLOATS = TELEMETRY.replace("double", "float")


def run(telemetry, n):
    with tempfile.TemporaryDirectory() as d:
        proto, schema = Path(d) / "t.proto", Path(d) / "schema.json"
        proto.write_text(telemetry)
        protoschema(["--telemetry", str(proto), "-o", str(schema)])
        env = micropython_env()
        out = subprocess.run(
            [str(MICROPYTHON), str(ROOT / "bench/payload_mp.py")] + [str(schema), str(n)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if out.returncode:
            raise SystemExit(out.stdout + out.stderr)
        return [line.split() for line in out.stdout.splitlines()]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print("one telemetry message: ts + 6 readings of the sample device, %d encodings" % n)
    print(
        "%-22s %6s %9s %12s %14s" % ("format", "body B", "datagram", "heap B/msg", "code+schema B")
    )
    rows = run(TELEMETRY, n) + [["protobuf(float)"] + run(FLOATS, n)[1][1:]]
    for name, body, datagram, heap, loaded in rows:
        print("%-22s %6s %9s %12s %14s" % (name, body, datagram, heap, loaded))


if __name__ == "__main__":
    main()
