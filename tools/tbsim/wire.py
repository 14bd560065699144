# wire.py: the project's CoAP codec (lib/coap/codec.py), loaded straight from its file so that
# MicroPython-only imports that lib/coap/__init__.py may gain never run under CPython.
import importlib.util
import os
import sys

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "lib", "coap", "codec.py")


def _load():
    name = "tbsim_coap_codec"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(_PATH))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


codec = _load()
