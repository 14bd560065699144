# protobuf: a small Protocol Buffers (proto3) codec for MicroPython, driven by a compact schema
# description (a dict, usually loaded from JSON; tools/protoschema makes one from .proto text).
# Names load on first use; the codec also runs under CPython, where tests cross-check it.

_attrs = {"Schema": "message", "ProtoError": "wire"}


def __getattr__(name):
    mod = _attrs.get(name)
    try:
        m = __import__("protobuf." + (mod or name), None, None, [name])
    except ImportError:
        raise AttributeError(name) from None
    value = getattr(m, name) if mod else m
    globals()[name] = value
    return value
