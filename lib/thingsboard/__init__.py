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
    if mod is None:
        raise AttributeError(name)
    value = getattr(__import__("thingsboard." + mod, None, None, [name]), name)
    globals()[name] = value
    return value
