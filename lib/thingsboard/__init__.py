# thingsboard: ThingsBoard's CoAP device API on lib/coap. Names load on first use.

_attrs = {
    "Device": "device",
    "provision": "provision",
    "ProvisionError": "provision",
    "BadRequest": "errors",
    "Unauthorized": "errors",
    "NotFound": "errors",
    "ServerError": "errors",
}


def __getattr__(name):
    mod = _attrs.get(name)
    try:
        m = __import__("thingsboard." + (mod or name), None, None, [name])
    except ImportError:
        raise AttributeError(name) from None
    value = getattr(m, name) if mod else m  # a name, or a submodule
    globals()[name] = value
    return value
