# errors.py: ThingsBoard's CoAP error codes as named exceptions (all are coap ResponseError).
# Loaded by the first failed request (device.check), not before.
from coap.client import ResponseError


class BadRequest(ResponseError):
    pass


class Unauthorized(ResponseError):
    pass


class NotFound(ResponseError):
    pass


class ServerError(ResponseError):
    pass


_BY_CODE = {
    128: (BadRequest, "bad request: the server could not use the body or path"),
    129: (Unauthorized, "unauthorized: bad or unknown access token"),
    132: (NotFound, "not found"),
    160: (ServerError, "server error (or rate limit)"),
}


def error(code):
    # the named error of a response code
    cls, msg = _BY_CODE.get(code, (ResponseError, "unexpected response"))
    return cls(code, msg)
