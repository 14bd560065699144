# coap: a CoAP client for MicroPython (RFC 7252, 7641, 7959). Names load on first use, so
# `import coap` costs nothing until a part is touched (the codec alone runs under CPython).

_attrs = {
    "Client": "client",
    "Exchange": "client",
    "Observation": "client",
    "CoapTimeout": "client",
    "Reset": "client",
    "ResponseError": "client",
    "connect": "client",
    "download": "block",
    "upload": "block",
    "Message": "message",
    "MessageError": "codec",
    "View": "codec",
    "parse_uri": "uri",
    "uri_options": "uri",
}


def __getattr__(name):
    mod = _attrs.get(name)
    try:
        m = __import__("coap." + (mod or name), None, None, [name])
    except ImportError:
        raise AttributeError(name) from None
    value = getattr(m, name) if mod else m  # a name, or a submodule (from coap import codec)
    globals()[name] = value
    return value
