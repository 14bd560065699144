# protobuf: a small Protocol Buffers (proto3) codec for MicroPython, driven by a compact schema
# description (a dict, usually loaded from JSON; tools/protoschema makes one from .proto text).
# The codec also runs under CPython, where tests cross-check it. Import from its modules:
#   protobuf.message   Schema (encode, decode), find
#   protobuf.wire      the wire format: varints, keys, lengths; ProtoError
