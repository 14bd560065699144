# Codec tests (CPython): the codec in lib/coap/codec.py cross-checked against aiocoap.
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE.parent.parent / "lib", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
