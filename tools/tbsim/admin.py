# admin.py: the HTTP admin API (JSON) on ThingsBoard's REST paths where one exists, so scripts
# written for ThingsBoard carry over. A small HTTP/1.1 server on asyncio streams; handlers run
# on the server's loop, next to the CoAP side. It also serves tbsim's page (web/) and its
# live events (live.py).
import asyncio
import email.parser
import email.policy
import json
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from . import jsonrules, ota, power
from .core import NotFound, RpcFailed, RpcTimeout, payload_config
from .store import SCOPES

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    504: "Gateway Timeout",
}
MAX_BODY = 64 * 1024 * 1024
WEB = Path(__file__).resolve().parent / "web"
# uPlot, installed by `make setup` from the npm registry (tools/tbsim/web/package.json)
UPLOT = Path(__file__).resolve().parents[2] / "build" / "web" / "node_modules" / "uplot"
UPLOT_FILES = {"uPlot.iife.min.js": "dist/", "uPlot.min.css": "dist/", "LICENSE": ""}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
TYPES[".png"] = "image/png"
PROVISION_TYPES = ("DISABLED", "ALLOW_CREATE_NEW_DEVICES", "CHECK_PRE_PROVISIONED_DEVICES")
RPC_STATUSES = ("QUEUED", "SENT", "DELIVERED", "SUCCESSFUL", "TIMEOUT", "EXPIRED", "FAILED")
TENANT = "13814000-1dd2-11b2-8080-808080808080"  # tbsim has one tenant: TB's NULL_UUID


class HttpError(Exception):
    # TB's error body: {"status", "message", "errorCode", "timestamp"}
    def __init__(self, status, message, error_code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code or {400: 31, 404: 32, 408: 2, 504: 2}.get(status, 2)

    def body(self):
        return {
            "status": self.status,
            "message": self.message,
            "errorCode": self.error_code,
            "timestamp": int(time.time() * 1000),
        }


class Stream:
    # a handler's answer that goes on: text/event-stream chunks until either side stops
    def __init__(self, chunks):
        self.chunks = chunks


class Request:
    def __init__(self, method, target, headers, body):
        url = urlsplit(target)
        self.method = method
        self.path = unquote(url.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError as e:
            raise HttpError(400, "Invalid request body: %s" % e) from e

    def json_object(self):
        body = self.json()
        if not isinstance(body, dict):
            raise HttpError(400, "Request body must be a JSON object")
        return body


def _entity(kind, eid):
    return {"entityType": kind, "id": eid} if eid else None


def _ref_id(value):
    # {"id": X} or {"entityType":..,"id": X} or X -> X
    return value.get("id") if isinstance(value, dict) else value


def _ts_string(value):
    # TB returns telemetry values as strings unless useStrictDataTypes=true
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Admin:
    def __init__(self, sim):
        self.sim = sim
        self.core = sim.core
        self.store = sim.store
        self.routes = []
        r = self.route
        r("POST", r"/api/auth/login", self.login)
        r("POST", r"/api/device", self.save_device)
        r("GET", r"/api/tenant/devices", self.list_devices)
        r("GET", r"/api/device/(?P<did>[^/]+)", self.get_device)
        r("DELETE", r"/api/device/(?P<did>[^/]+)", self.delete_device)
        r("GET", r"/api/device/(?P<did>[^/]+)/credentials", self.get_credentials)
        r("POST", r"/api/device/credentials", self.save_credentials)
        tel = r"/api/plugins/telemetry/DEVICE/(?P<did>[^/]+)"
        r("POST", tel + r"(/attributes)?/(?P<scope>[A-Z_]+)", self.save_attributes)
        r("DELETE", tel + r"/(?P<scope>[A-Z_]+)", self.delete_attributes)
        r("GET", tel + r"/values/attributes(/(?P<scope>[A-Z_]+))?", self.get_attributes)
        r("GET", tel + r"/values/timeseries", self.get_timeseries)
        r("GET", tel + r"/keys/timeseries", self.timeseries_keys)
        r("GET", tel + r"/keys/attributes", self.attribute_keys)
        r("POST", r"/api(?P<v1>/plugins)?/rpc/(?P<way>oneway|twoway)/(?P<did>[^/]+)", self.rpc)
        r("GET", r"/api/rpc/persistent/device/(?P<did>[^/]+)", self.persistent_rpcs)
        r("GET", r"/api/rpc/persistent/(?P<rid>[^/]+)", self.get_persistent_rpc)
        r("DELETE", r"/api/rpc/persistent/(?P<rid>[^/]+)", self.delete_persistent_rpc)
        r("GET", r"/api/tbsim/rpc/(?P<did>[^/]+)", self.rpc_log)
        r("POST", r"/api/otaPackage", self.save_ota)
        r("POST", r"/api/otaPackage/(?P<pid>[^/]+)", self.upload_ota)
        r("GET", r"/api/otaPackages", self.list_ota)
        r("GET", r"/api/otaPackage/info/(?P<pid>[^/]+)", self.get_ota)
        r("GET", r"/api/otaPackage/(?P<pid>[^/]+)/download", self.download_ota)
        r("DELETE", r"/api/otaPackage/(?P<pid>[^/]+)", self.delete_ota)
        r("POST", r"/api/deviceProfile", self.save_profile)
        r("GET", r"/api/deviceProfiles", self.list_profiles)
        r("GET", r"/api/deviceProfile/(?P<pid>[^/]+)", self.get_profile)
        r("DELETE", r"/api/deviceProfile/(?P<pid>[^/]+)", self.delete_profile)
        r("POST", r"/api/customer/device/(?P<name>[^/]+)/claim", self.claim)
        r("GET", r"/api/tbsim/faults", self.get_faults)
        r("POST", r"/api/tbsim/faults", self.set_faults)
        r("POST", r"/api/tbsim/faults/reset", self.reset_faults)
        r("POST", r"/api/tbsim/faults/drop-observes", self.drop_observes)
        r("GET", r"/api/tbsim/events", self.events)
        r("GET", r"/api/tbsim/state", self.state)
        r("GET", r"/", self.page)
        r("GET", r"/web/(?P<name>[A-Za-z0-9_-]+\.[a-z]+)", self.web)
        r("GET", r"/web/uplot/(?P<name>[A-Za-z.]+)", self.uplot)

    def route(self, method, pattern, handler):
        self.routes.append((method, re.compile(pattern + r"/?\Z"), handler))

    # HTTP plumbing

    async def serve(self, reader, writer):
        try:
            status, body, ctype = await self._one(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            writer.close()
            return
        if isinstance(body, Stream):
            await self._stream(writer, body.chunks)
            return
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = b"" if body is None else json.dumps(body).encode()
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            status,
            REASONS.get(status, ""),
            ctype,
            len(data),
        )
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + data)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _stream(self, writer, chunks):
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n")
        try:
            async for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the page went away, or tbsim stops: either way the stream just ends
        finally:
            await chunks.aclose()
            writer.close()

    async def _one(self, reader, writer):
        line = (await reader.readline()).decode("latin-1").split()
        if len(line) != 3:
            raise ValueError("bad request line")
        headers = {}
        while True:
            h = (await reader.readline()).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name, _, value = h.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            return 411, HttpError(411, "Send a Content-Length").body(), "application/json"
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            return 413, HttpError(413, "Body too large").body(), "application/json"
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl -F waits for this
        body = await reader.readexactly(length) if length else b""
        req = Request(line[0].upper(), line[1], headers, body)
        try:
            result = await self.dispatch(req)
        except HttpError as e:
            self.sim.log("http", req.method, req.path, "->", e.status, e.message)
            return e.status, e.body(), "application/json"
        except Exception as e:  # a tbsim bug: say so in the reply instead of hanging up
            self.sim.log("http", req.method, req.path, "-> 500", repr(e))
            return 500, HttpError(500, repr(e)).body(), "application/json"
        status, body, ctype = result if isinstance(result, tuple) else (200, result, None)
        self.sim.log("http", req.method, req.path, "->", status)
        return status, body, ctype or "application/json"

    async def dispatch(self, req):
        allowed = False
        for method, pattern, handler in self.routes:
            m = pattern.match(req.path)
            if m:
                allowed = True
                if method == req.method:
                    try:
                        return await handler(req, **m.groupdict())
                    except NotFound as e:
                        raise HttpError(404, str(e)) from e
        if allowed:
            raise HttpError(405, "Request method '%s' is not supported" % req.method)
        raise HttpError(404, "No such API: %s" % req.path)

    # devices

    async def login(self, req):
        return {"token": "tbsim", "refreshToken": "tbsim"}  # no auth: accepted for scripts

    def device_json(self, dev):
        return {
            "id": _entity("DEVICE", dev["id"]),
            "createdTime": dev["created_ts"],
            "name": dev["name"],
            "type": dev["type"],
            "label": dev["label"],
            "deviceProfileId": _entity("DEVICE_PROFILE", dev["profile_id"]),
            "firmwareId": _entity("OTA_PACKAGE", dev["firmware_id"]),
            "softwareId": _entity("OTA_PACKAGE", dev["software_id"]),
            "deviceData": {
                "configuration": {"type": "DEFAULT"},
                "transportConfiguration": dev["transport"] or {"type": "DEFAULT"},
            },
        }

    def _device(self, did):
        return self.core.device(did)

    async def save_device(self, req):
        body = req.json_object()
        profile_id = _ref_id(body.get("deviceProfileId"))
        if profile_id and self.store.profile(profile_id) is None:
            raise HttpError(400, "Device profile is not found")
        transport = self._device_transport(body)
        did = _ref_id(body.get("id"))
        if did:
            dev = self._update_device(self._device(did), body, profile_id, transport)
            return self.device_json(dev)
        name = body.get("name")
        if not name or not isinstance(name, str):
            raise HttpError(400, "Device name should be specified!")
        try:
            dev = self.store.create_device(
                name, req.query.get("accessToken"), profile_id, body.get("type"), body.get("label")
            )
        except sqlite3.IntegrityError as e:
            raise HttpError(400, "Device with such name or access token already exists!") from e
        self.sim.log("http", "device created", name)
        if transport:
            self.store.update_device(dev["id"], transport=transport)
        for key, kind in (("firmwareId", "FIRMWARE"), ("softwareId", "SOFTWARE")):
            if _ref_id(body.get(key)):
                self.core.assign_ota(dev["id"], kind, _ref_id(body[key]))
        return self.device_json(self.store.device(dev["id"]))

    def _device_transport(self, body):
        # deviceData.transportConfiguration: DEFAULT (None) or COAP with power-saving fields,
        # which take precedence over the profile's clientSettings; False when not given
        data = body.get("deviceData")
        if not isinstance(data, dict) or "transportConfiguration" not in data:
            return False
        conf = data["transportConfiguration"]
        if conf is None or conf == {"type": "DEFAULT"}:
            return None
        if not isinstance(conf, dict) or conf.get("type") != "COAP":
            raise HttpError(400, "deviceData.transportConfiguration.type must be DEFAULT or COAP")
        error = power.check(conf)
        if error:
            raise HttpError(400, "[Transport Configuration] %s" % error)
        return conf

    def _update_device(self, dev, body, profile_id, transport):
        fields = {k: body[k] for k in ("name", "type", "label") if k in body}
        if profile_id:
            fields["profile_id"] = profile_id
        if transport is not False:
            fields["transport"] = transport
        try:
            self.store.update_device(dev["id"], **fields)
        except sqlite3.IntegrityError as e:
            raise HttpError(400, "Device with such name already exists!") from e
        for key, column, kind in (
            ("firmwareId", "firmware_id", "FIRMWARE"),
            ("softwareId", "software_id", "SOFTWARE"),
        ):
            if key in body and _ref_id(body[key]) != dev[column]:
                self.core.assign_ota(dev["id"], kind, _ref_id(body[key]))
        return self.store.device(dev["id"])

    async def list_devices(self, req):
        name = req.query.get("deviceName")
        if name is not None:
            dev = self.store.device_by_name(name)
            if dev is None:
                raise HttpError(404, "Requested item wasn't found!")
            return self.device_json(dev)
        devices = [self.device_json(d) for d in self.store.devices()]
        return self._page(req, devices)

    def _page(self, req, items):
        try:
            size = int(req.query.get("pageSize", 1000))
            page = int(req.query.get("page", 0))
        except ValueError as e:
            raise HttpError(400, "pageSize and page must be numbers") from e
        if size < 1 or page < 0:
            raise HttpError(400, "pageSize must be positive and page not negative")
        chunk = items[page * size : (page + 1) * size]
        pages = (len(items) + size - 1) // size
        return {
            "data": chunk,
            "totalPages": pages,
            "totalElements": len(items),
            "hasNext": page + 1 < pages,
        }

    async def get_device(self, req, did):
        return self.device_json(self._device(did))

    async def delete_device(self, req, did):
        self.core.delete_device(did)

    async def get_credentials(self, req, did):
        self._device(did)
        c = self.store.credentials(did)
        return {
            "deviceId": _entity("DEVICE", did),
            "credentialsType": c["type"],
            "credentialsId": c["credentials_id"],
            "credentialsValue": c["value"],
        }

    async def save_credentials(self, req):
        body = req.json_object()
        did = _ref_id(body.get("deviceId"))
        self._device(did)
        if body.get("credentialsType", "ACCESS_TOKEN") != "ACCESS_TOKEN":
            raise HttpError(400, "tbsim supports ACCESS_TOKEN credentials only")
        token = body.get("credentialsId")
        if not token or not isinstance(token, str):
            raise HttpError(400, "credentialsId (the access token) should be specified!")
        try:
            self.store.set_credentials(did, "ACCESS_TOKEN", token)
        except sqlite3.IntegrityError as e:
            raise HttpError(400, "Access token is already used by another device") from e
        return await self.get_credentials(req, did)

    # attributes and telemetry

    async def save_attributes(self, req, did, scope):
        self._device(did)
        body = req.json_object()
        values = jsonrules.key_values(body)
        if scope == "SHARED_SCOPE":
            self.core.set_shared(did, values)
        elif scope == "SERVER_SCOPE":
            self.store.set_attributes(did, scope, values)
        else:
            raise HttpError(400, "Invalid attribute scope: %s" % scope)

    async def delete_attributes(self, req, did, scope):
        self._device(did)
        keys = [k for k in req.query.get("keys", "").split(",") if k]
        if not keys:
            raise HttpError(400, "keys should be specified!")
        if scope == "SHARED_SCOPE":
            self.core.delete_shared(did, keys)
        elif scope in ("SERVER_SCOPE", "CLIENT_SCOPE"):
            self.store.delete_attributes(did, scope, keys)
        else:
            raise HttpError(400, "Invalid attribute scope: %s" % scope)

    def _keys(self, req):
        keys = req.query.get("keys")
        return [k for k in keys.split(",") if k] if keys else None

    async def get_attributes(self, req, did, scope=None):
        self._device(did)
        if scope and scope not in SCOPES:
            raise HttpError(400, "Invalid attribute scope: %s" % scope)
        scopes = [scope] if scope else SCOPES
        out = []
        for s in scopes:
            for a in self.store.attributes(did, s, self._keys(req)):
                ts = a["last_update_ts"]
                out.append({"key": a["key"], "value": a["value"], "lastUpdateTs": ts})
        return out

    async def get_timeseries(self, req, did):
        self._device(did)
        keys = self._keys(req) or self.store.telemetry_keys(did)
        q = req.query
        try:
            if "startTs" in q or "endTs" in q:
                start = int(q.get("startTs", 0))
                end = int(q.get("endTs", 2**62))
                limit = int(q.get("limit", 100))
                asc = q.get("orderBy", "DESC").upper() == "ASC"
                data = self.store.history(did, keys, start, end, limit, asc)
            else:
                data = self.store.latest(did, keys)
        except ValueError as e:
            raise HttpError(400, "startTs, endTs and limit must be numbers") from e
        if q.get("useStrictDataTypes", "false").lower() != "true":
            for points in data.values():
                for p in points:
                    p["value"] = _ts_string(p["value"])
        return data

    async def timeseries_keys(self, req, did):
        self._device(did)
        return self.store.telemetry_keys(did)

    async def attribute_keys(self, req, did):
        self._device(did)
        keys = set()
        for s in SCOPES:
            keys.update(self.store.attribute_dict(did, s))
        return sorted(keys)

    # RPC

    async def rpc(self, req, way, did, v1=None):
        # a lightweight RPC answers with the device's reply; a persistent one with its rpcId
        self._device(did)
        body = req.json_object()
        method = body.get("method")
        if not method or not isinstance(method, str):
            raise HttpError(400, "method should be specified!")
        try:
            timeout = int(body.get("timeout", 10000))
            expires = body.get("expirationTime")
            expires = self.core.clock() + timeout if expires is None else int(expires)
            retries = body.get("retries")
            retries = None if retries is None else int(retries)
        except (TypeError, ValueError) as e:
            raise HttpError(400, "timeout, expirationTime and retries must be numbers") from e
        oneway = way == "oneway"
        params = body.get("params")
        try:
            if body.get("persistent") in (True, "true"):
                info = body.get("additionalInfo")
                rid = self.core.persistent_rpc(did, method, params, oneway, expires, retries, info)
                return {"rpcId": rid}
            wait = (expires - self.core.clock()) / 1000
            return await self.core.server_rpc(did, method, params, wait, oneway=oneway)
        except RpcTimeout as e:
            raise HttpError(504 if v1 else 408, "Request timeout: %s" % e) from e
        except RpcFailed as e:
            raise HttpError(500, str(e)) from e

    async def rpc_log(self, req, did):
        self._device(did)
        return self.store.rpcs(did)

    def rpc_json(self, r):
        # ThingsBoard's Rpc entity; its request is the ToDeviceRpcRequest, params as JSON text
        tenant = _entity("TENANT", TENANT)
        device = _entity("DEVICE", r["device_id"])
        params = None if r["params"] is None else json.dumps(r["params"], separators=(",", ":"))
        request = {
            "id": r["uuid"],
            "tenantId": tenant,
            "deviceId": device,
            "oneway": bool(r["oneway"]),
            "expirationTime": r["expiration_ts"],
            "body": {"method": r["method"], "params": params},
            "persisted": True,
            "retries": r["retries"],
        }
        return {
            "id": _entity("RPC", r["uuid"]),
            "createdTime": r["created_ts"],
            "tenantId": tenant,
            "deviceId": device,
            "expirationTime": r["expiration_ts"],
            "request": request,
            "response": r["response"],
            "status": r["status"],
            "additionalInfo": r["additional_info"],
        }

    def _persistent(self, rid):
        r = self.store.rpc_by_uuid(rid)
        if r is None:
            raise HttpError(404, "Requested item wasn't found!")
        return r

    async def get_persistent_rpc(self, req, rid):
        return self.rpc_json(self._persistent(rid))

    async def delete_persistent_rpc(self, req, rid):
        self.core.delete_rpc(self._persistent(rid)["row"])

    async def persistent_rpcs(self, req, did):
        self._device(did)
        status = req.query.get("rpcStatus") or None
        if status == "DELETED":  # deleted RPCs are gone; ThingsBoard answers 500 here
            raise HttpError(500, "RpcStatus: DELETED")
        if status is not None and status not in RPC_STATUSES:
            raise HttpError(400, "rpcStatus must be one of %s" % ", ".join(RPC_STATUSES))
        rows = self.store.persistent_rpcs(did, status)
        key = {"createdTime": "created_ts", "expirationTime": "expiration_ts"}.get(
            req.query.get("sortProperty"), "created_ts"
        )
        rows.sort(key=lambda r: r[key], reverse=req.query.get("sortOrder") == "DESC")
        return self._page(req, [self.rpc_json(r) for r in rows])

    # OTA packages

    def ota_json(self, pkg):
        return {
            "id": _entity("OTA_PACKAGE", pkg["id"]),
            "createdTime": pkg["created_ts"],
            "type": pkg["type"],
            "title": pkg["title"],
            "version": pkg["version"],
            "tag": pkg["tag"],
            "url": pkg["url"],
            "hasData": bool(pkg["has_data"]),
            "fileName": pkg["file_name"],
            "contentType": pkg["content_type"],
            "checksumAlgorithm": pkg["checksum_algorithm"],
            "checksum": pkg["checksum"],
            "dataSize": pkg["size"],
        }

    def _ota(self, pid, with_data=False):
        pkg = self.store.ota(pid, with_data)
        if pkg is None:
            raise HttpError(404, "OTA package [%s] is not found" % pid)
        return pkg

    async def save_ota(self, req):
        body = req.json_object()
        kind = body.get("type", "FIRMWARE")
        if kind not in ota.TYPES:
            raise HttpError(400, "type must be FIRMWARE or SOFTWARE")
        title, version = body.get("title"), body.get("version")
        if not (isinstance(title, str) and title and isinstance(version, str) and version):
            raise HttpError(400, "OTA package title and version should be specified!")
        pkg = {"type": kind, "title": title, "version": version, "tag": body.get("tag")}
        pkg["url"] = body.get("url")
        pid = _ref_id(body.get("id"))
        if pid:
            old = self._ota(pid, with_data=True)
            pkg = dict(old, **{k: v for k, v in pkg.items() if v is not None}, id=pid)
        try:
            return self.ota_json(self.store.save_ota(pkg))
        except sqlite3.IntegrityError as e:
            raise HttpError(400, "OTA package with such title and version already exists!") from e

    async def upload_ota(self, req, pid):
        pkg = self._ota(pid, with_data=True)
        if pkg["url"]:
            raise HttpError(400, "Package has an external URL; it takes no data")
        algorithm = req.query.get("checksumAlgorithm", "SHA256").upper()
        if algorithm not in ota.ALGORITHMS:
            raise HttpError(400, "Unsupported checksum algorithm: %s" % algorithm)
        data, file_name, ctype = self._file(req)
        if not data:
            raise HttpError(400, "OTA package file is empty!")
        checksum = ota.checksum(data, algorithm)
        given = req.query.get("checksum")
        if given and given.lower() != checksum:
            raise HttpError(400, "Wrong OTA package file: checksum mismatch")
        pkg.update(
            data=data,
            size=len(data),
            checksum_algorithm=algorithm,
            checksum=checksum,
            file_name=file_name,
            content_type=ctype,
        )
        return self.ota_json(self.store.save_ota(pkg))

    def _file(self, req):
        # multipart/form-data with a "file" part (as TB's UI and REST client send), or raw bytes
        ctype = req.headers.get("content-type", "application/octet-stream")
        if not ctype.startswith("multipart/"):
            return req.body, req.query.get("fileName", "package.bin"), ctype
        head = ("Content-Type: %s\r\n\r\n" % ctype).encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True) or b""
                return data, part.get_filename(), part.get_content_type()
        raise HttpError(400, "multipart body has no 'file' part")

    async def list_ota(self, req):
        return self._page(req, [self.ota_json(p) for p in self.store.ota_list()])

    async def get_ota(self, req, pid):
        return self.ota_json(self._ota(pid))

    async def download_ota(self, req, pid):
        pkg = self._ota(pid, with_data=True)
        if pkg["data"] is None:
            raise HttpError(404, "OTA package has no data")
        return 200, pkg["data"], pkg["content_type"] or "application/octet-stream"

    async def delete_ota(self, req, pid):
        self._ota(pid)
        for dev in self.store.devices():
            for column, kind in (("firmware_id", "FIRMWARE"), ("software_id", "SOFTWARE")):
                if dev[column] == pid:
                    self.core.assign_ota(dev["id"], kind, None)
        self.store.delete_ota(pid)

    # provision profiles (ThingsBoard keeps them in device profiles)

    def profile_json(self, p):
        data = {
            "provisionConfiguration": {
                "type": p["provision_type"],
                "provisionDeviceSecret": p["provision_secret"],
            }
        }
        if p["transport"]:
            data["transportConfiguration"] = p["transport"]
        return {
            "id": _entity("DEVICE_PROFILE", p["id"]),
            "createdTime": p["created_ts"],
            "name": p["name"],
            "default": bool(p["is_default"]),
            "transportType": "COAP",
            "provisionType": p["provision_type"],
            "provisionDeviceKey": p["provision_key"],
            "profileData": data,
        }

    async def save_profile(self, req):
        body = req.json_object()
        conf = (body.get("profileData") or {}).get("provisionConfiguration") or {}
        ptype = body.get("provisionType") or conf.get("type") or "DISABLED"
        if ptype not in PROVISION_TYPES:
            raise HttpError(400, "provisionType must be one of %s" % ", ".join(PROVISION_TYPES))
        key = body.get("provisionDeviceKey") or conf.get("provisionDeviceKey")
        secret = conf.get("provisionDeviceSecret") or body.get("provisionDeviceSecret")
        if ptype != "DISABLED" and not (key and secret):
            raise HttpError(400, "Provision device key and secret should be specified!")
        if not body.get("name"):
            raise HttpError(400, "Device profile name should be specified!")
        pid = _ref_id(body.get("id"))
        old = self.store.profile(pid) if pid else None
        if pid and old is None:
            raise HttpError(404, "Device profile [%s] is not found" % pid)
        p = {
            "id": pid,
            "name": body["name"],
            "is_default": old["is_default"] if old else 0,
            "provision_type": ptype,
            "provision_key": key,
            "provision_secret": secret,
            "transport": self._transport((body.get("profileData") or {})),
        }
        try:
            return self.profile_json(self.store.save_profile(p))
        except sqlite3.IntegrityError as e:
            raise HttpError(400, "Profile name or provision key already in use") from e

    def _transport(self, data):
        # profileData.transportConfiguration: DEFAULT (JSON) or COAP, whose PROTOBUF schemas
        # must parse as ThingsBoard's would (§8.2)
        conf = data.get("transportConfiguration")
        if conf is None or conf == {"type": "DEFAULT"}:
            return None
        if not isinstance(conf, dict) or conf.get("type") not in ("DEFAULT", "COAP"):
            raise HttpError(400, "transportConfiguration.type must be DEFAULT or COAP")
        client = conf.get("clientSettings")
        error = power.check(client) if isinstance(client, dict) else None
        if client is not None and not isinstance(client, dict):
            error = "clientSettings must be an object"
        if error:
            raise HttpError(400, "[Transport Configuration] %s" % error)
        pconf = payload_config(conf)
        if pconf is None:
            return conf
        try:
            from . import proto
        except ImportError as e:
            raise HttpError(400, "PROTOBUF profiles need the PyPI protobuf package") from e
        try:
            proto.ProtoFormat(pconf)
        except (ValueError, TypeError) as e:
            raise HttpError(400, "[Transport Configuration] invalid %s" % e) from e
        return conf

    async def list_profiles(self, req):
        return self._page(req, [self.profile_json(p) for p in self.store.profiles()])

    def _profile(self, pid):
        p = self.store.profile(pid)
        if p is None:
            raise HttpError(404, "Device profile [%s] is not found" % pid)
        return p

    async def get_profile(self, req, pid):
        return self.profile_json(self._profile(pid))

    async def delete_profile(self, req, pid):
        p = self._profile(pid)
        if p["is_default"]:
            raise HttpError(400, "The default device profile can't be deleted!")
        if any(d["profile_id"] == pid for d in self.store.devices()):
            raise HttpError(400, "The device profile is referenced by devices!")
        self.store.delete_profile(pid)

    # claiming

    async def claim(self, req, name):
        body = req.json() or {}
        secret = body.get("secretKey", "") if isinstance(body, dict) else ""
        result, dev = self.core.claim(name, secret)
        if dev is None:
            raise HttpError(404, "Device [%s] is not found" % name)
        reply = {"response": result, "device": self.device_json(dev)}
        return (200 if result == "SUCCESS" else 400), reply, None

    # faults

    async def get_faults(self, req):
        return self.sim.faults.snapshot()

    async def set_faults(self, req):
        try:
            self.sim.faults.configure(req.json_object())
        except (ValueError, TypeError, AttributeError) as e:
            raise HttpError(400, str(e)) from e
        return self.sim.faults.snapshot()

    async def reset_faults(self, req):
        body = req.json() or {}
        self.sim.faults.reset(body.get("seed") if isinstance(body, dict) else None)
        return self.sim.faults.snapshot()

    async def drop_observes(self, req):
        self.sim.drop_observes()
        return self.sim.faults.snapshot()

    # tbsim's page: the files, and what it shows, live

    async def events(self, req):
        return 200, Stream(self.sim.live.stream()), "text/event-stream"

    async def state(self, req):
        return self.sim.live.snapshot()

    async def page(self, req):
        return await self.web(req, "index.html")

    async def web(self, req, name):
        return self._file_reply(WEB / name, name)

    async def uplot(self, req, name):
        if name not in UPLOT_FILES:
            raise HttpError(404, "No such file: %s" % name)
        path = UPLOT / (UPLOT_FILES[name] + name)
        if not path.exists():
            raise HttpError(404, "uPlot is not installed: run make setup")
        return self._file_reply(path, name)

    def _file_reply(self, path, name):
        ctype = TYPES.get(path.suffix, "text/plain; charset=utf-8")
        try:
            return 200, path.read_bytes(), ctype
        except OSError as e:
            raise HttpError(404, "No such file: %s" % name) from e
