# lib/protobuf under CPython, cross-checked against the PyPI protobuf package, and the schema
# tool (tools/protoschema).
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT / "lib", ROOT / "tests" / "device"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
