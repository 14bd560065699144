# wire.py: the project's CoAP codec (lib/coap/codec.py) and its Message (lib/coap/message.py),
# loaded from their files as a package of their own, so that MicroPython-only imports that
# lib/coap/__init__.py may gain never run under CPython.
import importlib
import os
import sys
import types

_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "lib", "coap"))


def _load():
    if "tbsim_coap" not in sys.modules:
        pkg = types.ModuleType("tbsim_coap")
        pkg.__path__ = [_DIR]
        sys.modules["tbsim_coap"] = pkg
    return importlib.import_module("tbsim_coap.codec"), importlib.import_module(
        "tbsim_coap.message"
    )


codec, message = _load()
Message = message.Message
