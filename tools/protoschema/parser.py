# parser.py: the .proto text of a ThingsBoard device profile schema -> a small tree of messages
# and enums, with ThingsBoard's own rules (DynamicProtoUtils.validateProtoSchema): proto3 only;
# no imports, file or message options, extensions, reserved ranges, groups, required fields or
# default values. What this project cannot represent either (maps, services) is refused too,
# each with the line and what to change. Field options are read and ignored, as ThingsBoard
# ignores them (json_name included).
import re

SCALARS = (
    "double float int32 int64 uint32 uint64 sint32 sint64 fixed32 fixed64 sfixed32 sfixed64"
    " bool string bytes"
).split()
_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<num>-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|inf|nan))"""
    r"""|(?P<ident>\.?[A-Za-z_][\w.]*)|(?P<sym>[{}\[\]();=<>,:-])""",
    re.S,
)


class SchemaError(ValueError):
    pass


class Field:
    def __init__(self, name, number, type_name, label, oneof=None, line=0):
        self.name = name
        self.number = number
        self.type = type_name  # a scalar, or after resolve() the full name of a message/enum
        self.label = label  # None, "optional" or "repeated"
        self.oneof = oneof
        self.line = line


class Message:
    def __init__(self, full_name, line):
        self.full_name = full_name
        self.fields = []
        self.oneofs = []
        self.line = line


class Enum:
    def __init__(self, full_name, line):
        self.full_name = full_name
        self.values = {}  # NAME -> number, in order


class File:
    def __init__(self):
        self.package = ""
        self.messages = {}  # full name -> Message (nested ones too), in order
        self.enums = {}
        self.top = []  # top-level message full names, in order

    def root(self):
        # the message ThingsBoard uses: the last top-level one (getDynamicMessageBuilder)
        return self.top[-1]


class _Parser:
    def __init__(self, text, what):
        self.what = what
        self.toks = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                line = text.count("\n", 0, pos) + 1
                raise SchemaError("%s line %d: unexpected %r" % (what, line, text[pos]))
            kind = m.lastgroup
            if kind not in ("ws", "comment"):
                self.toks.append((kind, m.group(), text.count("\n", 0, pos) + 1))
            pos = m.end()
        self.i = 0
        self.file = File()

    def fail(self, msg, line=None):
        if line is None:
            line = self.toks[min(self.i, len(self.toks) - 1)][2] if self.toks else 1
        raise SchemaError("%s line %d: %s" % (self.what, line, msg))

    def peek(self):
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def line(self):
        return self.toks[min(self.i, len(self.toks) - 1)][2] if self.toks else 1

    def next(self, kind=None):
        if self.i >= len(self.toks):
            self.fail("unexpected end of the schema")
        k, v, _ = self.toks[self.i]
        if kind and k != kind:
            self.fail("expected %s, got %r" % ({"ident": "a name", "num": "a number"}[kind], v))
        self.i += 1
        return v

    def expect(self, sym):
        v = self.next()
        if v != sym:
            self.i -= 1
            self.fail("expected %r, got %r" % (sym, v))

    def parse(self):
        f = self.file
        if self.peek() != "syntax":
            self.fail('expected syntax = "proto3"; first (ThingsBoard takes proto3 only)')
        self.next()
        self.expect("=")
        syntax = self.next("str")[1:-1]
        if syntax != "proto3":
            self.fail('syntax "%s": ThingsBoard takes proto3 only' % syntax)
        self.expect(";")
        while self.i < len(self.toks):
            word = self.next()
            if word == ";":
                continue
            if word == "package":
                f.package = self.next("ident")
                self.expect(";")
            elif word == "message":
                f.top.append(self.message(f.package))
            elif word == "enum":
                self.enum(f.package)
            elif word in ("import", "option", "extend", "service"):
                what = {"import": "imports", "option": "file options", "extend": "extensions"}
                self.fail("%s are not supported by ThingsBoard" % what.get(word, "services"))
            else:
                self.i -= 1
                self.fail("unexpected %r" % word)
        if not f.top:
            self.fail("no message: a schema needs at least one")
        return f

    def message(self, scope):
        line = self.line()
        name = self.next("ident")
        full = scope + "." + name if scope else name
        if full in self.file.messages or full in self.file.enums:
            self.fail("%s is defined twice" % full)
        msg = self.file.messages[full] = Message(full, line)
        self.expect("{")
        while True:
            word = self.peek()
            if word == "}":
                self.next()
                return full
            if word == ";":
                self.next()
            elif word == "message":
                self.next()
                self.message(full)
            elif word == "enum":
                self.next()
                self.enum(full)
            elif word == "oneof":
                self.next()
                oneof = self.next("ident")
                msg.oneofs.append(oneof)
                self.expect("{")
                while self.peek() != "}":
                    if self.peek() == ";":
                        self.next()
                    elif self.peek() == "option":
                        self.fail("oneof options are not supported by ThingsBoard")
                    else:
                        self.field(msg, None, oneof)
                self.next()
            elif word in ("option", "reserved", "extensions", "extend", "group"):
                what = {"option": "message options", "reserved": "reserved fields"}
                self.fail("%s are not supported by ThingsBoard" % what.get(word, word + "s"))
            elif word == "map":
                self.fail("map fields are not supported; use a nested message instead")
            else:
                label = None
                if word in ("optional", "repeated", "required"):
                    if word == "required":
                        self.fail("required fields are not supported by ThingsBoard (proto3)")
                    label = self.next()
                if self.peek() == "group":
                    self.fail("groups are not supported by ThingsBoard")
                self.field(msg, label, None)

    def field(self, msg, label, oneof):
        line = self.line()
        type_name = self.next("ident")
        name = self.next("ident")
        self.expect("=")
        number = self.next("num")
        if not number.isdigit() or not 1 <= int(number) <= 536870911:
            self.fail("field %s: number %s is not 1-536870911" % (name, number))
        number = int(number)
        if 19000 <= number <= 19999:
            self.fail("field %s: numbers 19000-19999 are reserved by protobuf" % name)
        if self.peek() == "[":
            self.options(name)
        self.expect(";")
        for other in msg.fields:
            if other.name == name:
                self.fail("field %s is defined twice in %s" % (name, msg.full_name), line)
            if other.number == number:
                self.fail("fields %s and %s share number %d" % (other.name, name, number), line)
        msg.fields.append(Field(name, number, type_name, label, oneof, line))

    def options(self, name):
        # [packed = true, json_name = "x", deprecated = true]: read, ignored like ThingsBoard
        self.next()
        while True:
            opt = self.next()
            if opt == "default":
                self.fail("field %s: default values are not supported by ThingsBoard" % name)
            if opt == "(":
                self.next("ident")
                self.expect(")")
            self.expect("=")
            self.next()
            sep = self.next()
            if sep == "]":
                return
            if sep != ",":
                self.i -= 1
                self.fail("expected ',' or ']'")

    def enum(self, scope):
        line = self.line()
        name = self.next("ident")
        full = scope + "." + name if scope else name
        if full in self.file.messages or full in self.file.enums:
            self.fail("%s is defined twice" % full)
        e = self.file.enums[full] = Enum(full, line)
        self.expect("{")
        while self.peek() != "}":
            word = self.next()
            if word == ";":
                continue
            if word in ("option", "reserved"):
                self.fail("enum %ss are not supported by ThingsBoard" % word)
            self.expect("=")
            number = self.next("num")
            if self.peek() == "[":
                self.options(word)
            self.expect(";")
            try:
                e.values[word] = int(number, 0)
            except ValueError:
                self.fail("enum %s: %s is not a whole number" % (name, number))
        self.next()
        if not e.values or list(e.values.values())[0] != 0:
            self.fail("enum %s: the first value must be 0 in proto3" % name, line)


def _resolve(f, what):
    # every field's type to a scalar or the full name of a message or enum (protobuf's scoping)
    for msg in f.messages.values():
        for fld in msg.fields:
            if fld.type in SCALARS:
                continue
            ref = fld.type
            if ref.startswith("."):
                candidates = [ref[1:]]
            else:
                scope = msg.full_name.split(".")
                candidates = [".".join(scope[:n] + [ref]) for n in range(len(scope), -1, -1)]
            for c in candidates:
                if c in f.messages or c in f.enums:
                    fld.type = c
                    break
            else:
                raise SchemaError(
                    "%s line %d: field %s: unknown type %s" % (what, fld.line, fld.name, ref)
                )


def parse(text, what="schema"):
    """.proto text -> File; raises SchemaError naming the line and the problem."""
    f = _Parser(text, what).parse()
    _resolve(f, what)
    return f


def json_name(name):
    # protobuf's lowerCamelCase JSON name: ThingsBoard stores fields under it
    out, upper = [], False
    for c in name:
        if c == "_":
            upper = True
        else:
            out.append(c.upper() if upper else c)
            upper = False
    return "".join(out)
