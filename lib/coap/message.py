# message.py: a CoAP message as plain values, for tools, tests and the CLI (the device itself
# encodes and decodes in place with codec.encode and codec.View).
from .codec import CON, EMPTY, View, code_str, encode

TYPES = ("CON", "NON", "ACK", "RST")


class Message:
    # A decoded or to-be-encoded message as plain values, for tools, tests and the CLI.

    def __init__(self, mtype=CON, code=EMPTY, mid=0, token=b"", options=None, payload=b""):
        self.type = mtype
        self.code = code
        self.mid = mid
        self.token = token
        self.options = options if options is not None else []
        self.payload = payload

    @classmethod
    def decode(cls, data):
        v = View().parse(data, len(data))
        return cls(v.type, v.code, v.mid, v.token(), v.options(), v.payload())

    def encode(self):
        # upper bound: 5 header bytes per option, ints up to 8 bytes
        size = 5 + len(self.token) + len(self.payload)
        for _, v in self.options:
            size += 5 + (8 if isinstance(v, int) else len(v) * 4)
        buf = bytearray(size)
        n = encode(buf, self.type, self.code, self.mid, self.token, self.options, self.payload)
        return bytes(buf[:n])

    def opt(self, num, default=None):
        for n, v in self.options:
            if n == num:
                return v
        return default

    def opts(self, num):
        return [v for n, v in self.options if n == num]

    def uint(self, num, default=None):
        v = self.opt(num)
        if v is None:
            return default
        return v if isinstance(v, int) else int.from_bytes(v, "big")

    def __repr__(self):
        return "<%s %s mid=%d token=%s %r %r>" % (
            TYPES[self.type],
            code_str(self.code),
            self.mid,
            self.token.hex() if hasattr(self.token, "hex") else self.token,
            self.options,
            bytes(self.payload),
        )
