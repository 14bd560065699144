# resources.py: the device-facing CoAP resources of ThingsBoard's transport (reference §1-§8):
# path parsing, authentication by token, the code of every failure, and which replies are
# "explicit" (a separate CON for a CON request) or left to the stack (piggy-backed).
import asyncio
import inspect
import json

from . import jsonrules, ota
from .events import mask
from .wire import codec

FEATURES = ("ATTRIBUTES", "TELEMETRY", "RPC", "CLAIM", "PROVISION")
BLOCK_SIZE = 1024  # Californium's MAX_MESSAGE_SIZE / PREFERRED_BLOCK_SIZE as TB sets them
PROTO_NOT_FOUND = b"\x08\x02"  # ProvisionDeviceResponseMsg{status: NOT_FOUND}
OCTET_STREAM = 42  # the content format of every reply of a PROTOBUF profile (§2.3)


def _dumps(value):
    return json.dumps(value, separators=(",", ":")).encode()


def _query(queries):
    # getQueryParameter: name before the first '=', value after it
    out = {}
    for q in queries:
        name, _, value = q.partition("=")
        out.setdefault(name, value)
    return out


class Resources:
    def __init__(self, core, registry, log, sync_timeout=10.0):
        self.core = core
        self.store = core.store
        self.obs = registry
        self.log = log
        self.sync_timeout = sync_timeout
        # device id -> telemetry messages stored (what ThingsBoard's rule engine gets; a
        # retransmission answered from the exchange cache is not one)
        self.telemetry_posts = {}

    async def handle(self, ex):
        msg = ex.msg
        segs = [v.decode(errors="replace") for v in msg.opts(codec.URI_PATH)]
        if len(segs) == 1 and "/" in segs[0]:
            segs = segs[0].lstrip("/").split("/")  # the whole path in one option (§1.1)
        ex.path = segs
        ex.queries = [v.decode(errors="replace") for v in msg.opts(codec.URI_QUERY)]
        head = segs[0] if segs else ""
        if head == "api":
            if len(segs) == 1:
                ex.respond(codec.METHOD_NOT_ALLOWED, explicit=False)
            elif segs[1] != "v1":
                ex.respond(codec.NOT_FOUND, explicit=False)
            else:
                await self.v1(ex, segs)
        elif head in ("fw", "sw"):
            self.ota(ex, segs)
        elif not segs and msg.code == codec.GET:
            ex.respond(codec.CONTENT, b"tbsim: ThingsBoard-compatible CoAP server", explicit=False)
        elif segs == [".well-known", "core"] and msg.code == codec.GET:
            links = b"</api>,</fw>,</sw>"
            opts = [(codec.CONTENT_FORMAT, codec.LINK_FORMAT)]
            ex.respond(codec.CONTENT, links, opts, explicit=False)
        elif not segs:
            ex.respond(codec.METHOD_NOT_ALLOWED, explicit=False)
        else:
            ex.respond(codec.NOT_FOUND, explicit=False)

    def _json_cf(self, ex):
        return [(codec.CONTENT_FORMAT, ex.msg.uint(codec.CONTENT_FORMAT, codec.JSON))]

    def _auth(self, ex, token):
        # the device of a token, or None once answered: 4.01 for an unknown token, 5.00 over
        # the transport rate limits (ratelimit.py)
        dev = self.store.device_by_token(token) if token else None
        if dev is None:
            ex.respond(codec.UNAUTHORIZED, explicit=False)
            return None
        ex.label = "%s %s" % (dev["name"], ex.label)
        self.core.touch(dev["id"])
        if not self.core.limits.check(dev["id"]):
            ex.respond(codec.INTERNAL_SERVER_ERROR, explicit=False)
            return None
        self.core.uplink(dev["id"])  # before the request is handled, as ThingsBoard wakes it
        return dev

    # /api/v1/...

    async def v1(self, ex, segs):
        n = len(segs)
        token = feature = None
        if n >= 4 and not (n == 4 and segs[3].isdigit()):
            token, feature = segs[2], segs[3]
        elif n >= 3:
            feature = "provision" if "provision" in segs else segs[2]
        masked = ["api", "v1", mask(token)] + segs[3:] if token else segs
        ex.label = "/" + "/".join(masked)
        method = ex.msg.code
        if method not in (codec.GET, codec.POST):
            ex.respond(codec.METHOD_NOT_ALLOWED, explicit=False)
            return
        feature = feature.upper() if feature else None
        if feature not in FEATURES:
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        if method == codec.POST:
            if feature == "PROVISION":
                self.provision(ex)
                return
            dev = self._auth(ex, token)
            if dev is not None:
                await getattr(self, "post_" + feature.lower())(ex, dev, segs)
        else:
            self.get(ex, token, feature)

    async def post_telemetry(self, ex, dev, segs):
        fmt = self.core.proto_format(dev)
        try:
            entries = (fmt or jsonrules).telemetry(ex.msg.payload)
        except jsonrules.JsonError:
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        self.store.add_telemetry(dev["id"], entries)
        self.telemetry_posts[dev["id"]] = self.telemetry_posts.get(dev["id"], 0) + 1
        ex.respond(codec.CREATED)

    async def post_attributes(self, ex, dev, segs):
        fmt = self.core.proto_format(dev)
        try:
            values = (fmt or jsonrules).attributes(ex.msg.payload)
        except jsonrules.JsonError:
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        self.store.set_attributes(dev["id"], "CLIENT_SCOPE", values)
        ex.respond(codec.CREATED)

    async def post_claim(self, ex, dev, segs):
        body = {}
        fmt = self.core.proto_format(dev)
        if fmt:
            try:
                secret, duration = fmt.claim(ex.msg.payload)
            except jsonrules.JsonError:
                ex.respond(codec.BAD_REQUEST, explicit=False)
                return
        elif ex.msg.payload:
            try:
                body = jsonrules.parse(ex.msg.payload)
                secret = str(body.get("secretKey", ""))
                duration = int(body.get("durationMs", 0) or 0)
            except (jsonrules.JsonError, AttributeError, TypeError, ValueError):
                ex.respond(codec.BAD_REQUEST, explicit=False)
                return
        else:
            secret, duration = "", 0
        self.core.claim_request(dev["id"], secret, duration)
        ex.respond(codec.CREATED)

    async def post_rpc(self, ex, dev, segs):
        fmt = self.core.proto_format(dev)
        if fmt:
            await self._post_rpc_proto(ex, dev, segs, fmt)
            return
        if len(segs) >= 5:
            try:
                rpc_id = int(segs[4])
            except ValueError:
                ex.respond(codec.BAD_REQUEST, explicit=False)
                return
            try:
                body = jsonrules.parse(ex.msg.payload)  # empty gives 5.00 too (§13)
            except jsonrules.JsonError:
                body = None
            if not isinstance(body, dict):
                ex.respond(codec.INTERNAL_SERVER_ERROR, explicit=False)
                return
            self.core.rpc_reply(dev["id"], rpc_id, body)
            ex.respond(codec.CREATED)
            return
        try:
            req = jsonrules.parse(ex.msg.payload)
            method = req["method"]
        except (jsonrules.JsonError, KeyError, TypeError):
            ex.respond(codec.INTERNAL_SERVER_ERROR, explicit=False)  # Gson/NPE escape (§2.1)
            return
        reply = await self._client_rpc(dev, str(method), req.get("params"))
        if reply is None:
            self.log(ex.label, "client RPC", method, "-> no reply (sync timeout)")
            return
        ex.respond(codec.CONTENT, _dumps(reply), self._json_cf(ex))

    async def _post_rpc_proto(self, ex, dev, segs, fmt):
        # ProtoCoapAdaptor: any undecodable body is an AdaptorException, so 4.00
        try:
            if len(segs) >= 5:
                rpc_id = int(segs[4])
                body = fmt.rpc_response(ex.msg.payload)
            else:
                method, params = fmt.client_rpc(ex.msg.payload)
        except (jsonrules.JsonError, ValueError):
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        if len(segs) >= 5:
            self.core.rpc_reply(dev["id"], rpc_id, body)
            ex.respond(codec.CREATED)
            return
        reply = await self._client_rpc(dev, method, params)
        if reply is None:
            self.log(ex.label, "client RPC", method, "-> no reply (sync timeout)")
            return
        opts = [(codec.CONTENT_FORMAT, OCTET_STREAM)]
        ex.respond(codec.CONTENT, fmt.client_rpc_reply(reply), opts)

    async def _client_rpc(self, dev, method, params):
        try:
            reply = self.core.rpc_handler(dev, method, params)
            if inspect.isawaitable(reply):
                reply = await asyncio.wait_for(reply, self.sync_timeout)
        except asyncio.TimeoutError:
            return None
        except Exception as e:
            return {"error": str(e)}
        return reply

    def provision(self, ex):
        payload = ex.msg.payload
        if not payload:
            ex.respond(codec.BAD_REQUEST, PROTO_NOT_FOUND, explicit=False)
            return
        try:
            req = jsonrules.parse(payload)
        except jsonrules.JsonError:
            self.provision_proto(ex, payload)  # TB falls back to protobuf (§7.1)
            return
        if not (isinstance(req, dict) and req.get("provisionDeviceKey")):
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        if not req.get("provisionDeviceSecret"):
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        ok, reply = self.core.provision(req)
        code = codec.CREATED if ok else codec.BAD_REQUEST
        opts = [(codec.CONTENT_FORMAT, codec.TEXT)]
        ex.respond(code, _dumps(reply), opts, explicit=False)

    def provision_proto(self, ex, payload):
        try:
            from . import proto
        except ImportError:  # no PyPI protobuf: answer as for an unknown key
            ex.respond(codec.BAD_REQUEST, PROTO_NOT_FOUND, explicit=False)
            return
        req = proto.provision_request(payload)
        if req is None:
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        ok, reply = self.core.provision(req)  # an empty key or secret: NOT_FOUND
        code = codec.CREATED if ok else codec.BAD_REQUEST
        ex.respond(code, proto.provision_reply(reply), explicit=False)

    def get(self, ex, token, feature):
        observe = ex.msg.uint(codec.OBSERVE)
        if observe == 1:
            # Californium cancels before TB's handler runs: only the deferred ACK (§3.4)
            rel = self.obs.by_request(ex)
            if rel is not None:
                self.obs.cancel(rel, "Observe=1")
            self.log(ex.label, "GET Observe=1 -> cancelled, no response")
            return
        if observe == 0:
            if feature == "TELEMETRY":
                ex.respond(codec.BAD_REQUEST, explicit=False)
                return
            dev = self._auth(ex, token)
            if dev is None:
                return
            fmt = self.core.proto_format(dev)
            if feature == "RPC":
                rel = self.obs.subscribe(ex, "rpc", dev)
                if fmt:
                    rel.content_format = OCTET_STREAM
                rel.first_response(ex, codec.VALID, b"", explicit=True)
                self.core.rpc_subscribed(dev["id"])
            else:
                rel = self.obs.subscribe(ex, "attributes", dev)
                shared = self.store.attribute_dict(dev["id"], "SHARED_SCOPE")
                if fmt:
                    rel.content_format = OCTET_STREAM
                    first = fmt.attribute_update(shared)
                else:
                    first = _dumps(shared)
                rel.first_response(ex, codec.CONTENT, first, explicit=False)
            return
        if feature != "ATTRIBUTES":
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        dev = self._auth(ex, token)
        if dev is not None:
            self.read_attributes(ex, dev)

    def read_attributes(self, ex, dev):
        keys = {}
        for q in ex.queries:
            parts = q.split("=")
            if len(parts) == 2 and parts[1]:  # CoapAdaptorUtils.toKeys (§5)
                keys[parts[0]] = parts[1].split(",")
        client_keys, shared_keys = keys.get("clientKeys"), keys.get("sharedKeys")
        out = {}
        for name, scope, wanted in (
            ("client", "CLIENT_SCOPE", client_keys),
            ("shared", "SHARED_SCOPE", shared_keys),
        ):
            if wanted is None and (client_keys or shared_keys):
                continue
            values = self.store.attribute_dict(dev["id"], scope, wanted)
            if values:
                out[name] = values
        fmt = self.core.proto_format(dev)
        cf = [(codec.CONTENT_FORMAT, OCTET_STREAM)] if fmt else self._json_cf(ex)
        if not out:
            ex.respond(codec.NOT_FOUND, b"", cf)
            return
        if fmt:
            body = fmt.attributes_reply(out.get("client", {}), out.get("shared", {}))
        else:
            body = _dumps(out)
        ex.respond(codec.CONTENT, body, cf)

    # /fw/{token} and /sw/{token} (§6.1)

    def ota(self, ex, segs):
        ota_type = "FIRMWARE" if segs[0] == "fw" else "SOFTWARE"
        ex.label = "/" + "/".join([segs[0]] + [mask(s) for s in segs[1:]])
        if ex.msg.code != codec.GET:
            ex.respond(codec.METHOD_NOT_ALLOWED, explicit=False)
            return
        block2 = ex.msg.uint(codec.BLOCK2)
        if not (block2 and block2 >> 4) and not ex.t.params.piggyback:
            ex.accept()  # follow-up blocks come from Californium's cache, without accept()
        dev = self.store.device_by_token(segs[1]) if len(segs) == 2 else None
        if dev is None:
            ex.respond(codec.UNAUTHORIZED, explicit=False)
            return
        ex.label = "%s %s" % (dev["name"], ex.label)
        self.core.touch(dev["id"])
        pkg = self.core.ota_for(dev, ota_type)
        if pkg is None or pkg["url"] or pkg["data"] is None:
            ex.respond(codec.NOT_FOUND, explicit=False)
            return
        q = _query(ex.queries)
        if ("title" in q and q["title"] != pkg["title"]) or (
            "version" in q and q["version"] != pkg["version"]
        ):
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        try:
            size = int(q.get("size") or 0)
            index = int(q.get("chunk") or 0)
        except ValueError:
            ex.respond(codec.BAD_REQUEST, explicit=False)
            return
        data = pkg["data"]
        if size >= 1:
            piece = ota.chunk(data, size, index)
            if not piece:
                self.log(ex.label, "chunk %d past the end: no response" % index)
                return
            ex.respond(codec.CONTENT, piece, explicit=False)
            return
        if len(data) <= BLOCK_SIZE and block2 is None:
            ex.respond(codec.CONTENT, data, explicit=False)
            return
        szx = min(block2 & 7, 6) if block2 is not None else 6
        num = block2 >> 4 if block2 is not None else 0
        bsize = 16 << szx
        piece = data[num * bsize : (num + 1) * bsize]
        if not piece:
            ex.respond(codec.BAD_OPTION, explicit=False)
            return
        more = int((num + 1) * bsize < len(data))
        ex.respond(codec.CONTENT, piece, [(codec.BLOCK2, num << 4 | more << 3 | szx)], False)
