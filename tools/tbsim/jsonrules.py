# jsonrules.py: ThingsBoard's JSON rules for device payloads (transport reference §8.1).
# The parser is as lenient as Gson's: unquoted keys and strings, single quotes, comments,
# '=' or '=>' between name and value, ';' between members. Trailing garbage is an error.
import json
import re
import time

LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1
_NUMERIC = re.compile(r"-?(\d+(\.\d+)?|\.\d+)\Z")
_LITERAL_END = set(" \t\r\n,:{}[]=;#/\\'\"")


class JsonError(ValueError):
    pass


class _Parser:
    def __init__(self, text):
        self.s = text
        self.i = 0

    def fail(self, what):
        raise JsonError("%s at offset %d" % (what, self.i))

    def skip(self):
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#" or s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    self.fail("unterminated comment")
                self.i = end + 2
            else:
                return

    def peek(self):
        self.skip()
        return self.s[self.i] if self.i < len(self.s) else ""

    def document(self):
        if not self.peek():
            self.fail("empty document")
        value = self.value()
        if self.peek():
            self.fail("did not consume the entire document")
        return value

    def value(self):
        c = self.peek()
        if c == "{":
            return self.obj()
        if c == "[":
            return self.array()
        if c in "\"'":
            return self.string(c)
        return self.literal(as_key=False)

    def obj(self):
        self.i += 1
        out = {}
        if self.peek() == "}":
            self.i += 1
            return out
        while True:
            c = self.peek()
            key = self.string(c) if c in "\"'" else self.literal(as_key=True)
            c = self.peek()
            if c == ":":
                self.i += 1
            elif c == "=":
                self.i += 2 if self.s.startswith("=>", self.i) else 1
            else:
                self.fail("expected ':'")
            out[key] = self.value()
            c = self.peek()
            if c in ",;":
                self.i += 1
            elif c == "}":
                self.i += 1
                return out
            else:
                self.fail("expected ',' or '}'")

    def array(self):
        self.i += 1
        out = []
        if self.peek() == "]":
            self.i += 1
            return out
        while True:
            out.append(self.value())
            c = self.peek()
            if c in ",;":
                self.i += 1
            elif c == "]":
                self.i += 1
                return out
            else:
                self.fail("expected ',' or ']'")

    def string(self, quote):
        s = self.s
        self.i += 1
        out = []
        while True:
            if self.i >= len(s):
                self.fail("unterminated string")
            c = s[self.i]
            if c == quote:
                self.i += 1
                return "".join(out)
            if c == "\\":
                esc = s[self.i : self.i + 2]
                if esc == "\\u":
                    out.append(chr(int(s[self.i + 2 : self.i + 6], 16)))
                    self.i += 6
                    continue
                mapped = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
                out.append(mapped.get(esc[1:], esc[1:]))
                self.i += 2
                continue
            out.append(c)
            self.i += 1

    def literal(self, as_key):
        start = self.i
        s = self.s
        while self.i < len(s) and s[self.i] not in _LITERAL_END:
            self.i += 1
        word = s[start : self.i]
        if not word:
            self.fail("unexpected character")
        if as_key:
            return word
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        try:
            return json.loads(word)  # a JSON number
        except ValueError:
            return word  # Gson reads an unquoted word as a string


def parse(data):
    # bytes or str -> Python value; JsonError on anything Gson would reject.
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JsonError("not UTF-8") from e
    return _Parser(data).document()


def cast(value):
    # One value as TB stores it, or None to skip it (null).
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if LONG_MIN <= value <= LONG_MAX else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        if _NUMERIC.match(value):
            if "." in value:
                return float(value)
            n = int(value)
            return n if LONG_MIN <= n <= LONG_MAX else value
        return value
    return value  # objects and arrays are stored as JSON values


def key_values(obj):
    out = {}
    for key, value in obj.items():
        value = cast(value)
        if value is not None:
            out[key] = value
    return out


def now_ms():
    return int(time.time() * 1000)


def _ts_entry(obj, ts):
    if isinstance(obj, dict) and "ts" in obj and "values" in obj:
        if not isinstance(obj["values"], dict):
            raise JsonError("values must be an object")
        try:
            stamp = int(cast(obj["ts"]))
        except (TypeError, ValueError) as e:
            raise JsonError("bad ts") from e
        return stamp, key_values(obj["values"])
    if isinstance(obj, dict):
        return ts, key_values(obj)
    raise JsonError("expected an object")


def telemetry(data, ts=None):
    # Payload -> [(ts, {key: value})] for the three shapes TB accepts.
    doc = parse(data)
    ts = now_ms() if ts is None else ts
    if isinstance(doc, list):
        return [_ts_entry(item, ts) for item in doc]
    return [_ts_entry(doc, ts)]


def attributes(data):
    doc = parse(data)
    if not isinstance(doc, dict):
        raise JsonError("attributes must be a JSON object")
    return key_values(doc)
