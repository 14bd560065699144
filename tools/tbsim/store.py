# store.py: everything tbsim keeps, in one SQLite file under the data folder.
# Used only from the server's event loop thread; values are stored as JSON text so a
# double stays a double (42.0) and a long stays a long across restarts. Every change is also
# told to `changed` (kind, device id, details), which feeds tbsim's page (live.py).
import json
import os
import secrets
import sqlite3
import time
import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, is_default INTEGER NOT NULL DEFAULT 0,
    provision_type TEXT NOT NULL DEFAULT 'DISABLED', provision_key TEXT UNIQUE,
    provision_secret TEXT, created_ts INTEGER NOT NULL, transport TEXT);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, type TEXT, label TEXT,
    profile_id TEXT NOT NULL, firmware_id TEXT, software_id TEXT, created_ts INTEGER NOT NULL,
    transport TEXT);
CREATE TABLE IF NOT EXISTS credentials (
    device_id TEXT PRIMARY KEY, type TEXT NOT NULL, credentials_id TEXT UNIQUE,
    value TEXT);
CREATE TABLE IF NOT EXISTS telemetry (
    device_id TEXT NOT NULL, key TEXT NOT NULL, ts INTEGER NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (device_id, key, ts));
CREATE TABLE IF NOT EXISTS attributes (
    device_id TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    last_update_ts INTEGER NOT NULL, PRIMARY KEY (device_id, scope, key));
CREATE TABLE IF NOT EXISTS rpc (
    row INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, rpc_id INTEGER NOT NULL,
    method TEXT, params TEXT, oneway INTEGER NOT NULL, status TEXT NOT NULL, response TEXT,
    created_ts INTEGER NOT NULL, uuid TEXT, persistent INTEGER NOT NULL DEFAULT 0,
    expiration_ts INTEGER, retries INTEGER, additional_info TEXT);
CREATE TABLE IF NOT EXISTS ota (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL,
    tag TEXT, url TEXT, data BLOB, size INTEGER, checksum_algorithm TEXT, checksum TEXT,
    file_name TEXT, content_type TEXT, created_ts INTEGER NOT NULL,
    UNIQUE (type, title, version));
CREATE TABLE IF NOT EXISTS claims (
    device_id TEXT PRIMARY KEY, secret TEXT NOT NULL, expires_ts INTEGER NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0);
"""

ADDED = [
    ("profiles", "transport TEXT"),
    ("devices", "transport TEXT"),
    ("rpc", "uuid TEXT"),
    ("rpc", "persistent INTEGER NOT NULL DEFAULT 0"),
    ("rpc", "expiration_ts INTEGER"),
    ("rpc", "retries INTEGER"),
    ("rpc", "additional_info TEXT"),
]
SCOPES = ("CLIENT_SCOPE", "SHARED_SCOPE", "SERVER_SCOPE")


def now_ms():
    return int(time.time() * 1000)


def new_token():
    return secrets.token_urlsafe(15)[:20]


def _rpc(r):
    for key in ("params", "response", "additional_info"):
        r[key] = json.loads(r[key]) if r[key] else None
    return r


def _device(row):
    # transport: the device's deviceData.transportConfiguration (JSON), None for DEFAULT
    if row is not None:
        row["transport"] = json.loads(row["transport"]) if row.get("transport") else None
    return row


def _profile(row):
    # transport: the profile's transportConfiguration (JSON in the table), None for TB's DEFAULT
    if row is not None:
        row["transport"] = json.loads(row["transport"]) if row.get("transport") else None
    return row


def _ignore(kind, did, **details):
    pass


class Store:
    def __init__(self, data_dir):
        self.changed = _ignore
        os.makedirs(data_dir, exist_ok=True)
        self.db = sqlite3.connect(os.path.join(data_dir, "tbsim.db"), isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        # columns added since: a data folder from before protobuf profiles, power saving
        # and persistent RPC gets them
        for table, column in ADDED:
            columns = [r[1] for r in self.db.execute("PRAGMA table_info(%s)" % table)]
            if column.split()[0] not in columns:
                self.db.execute("ALTER TABLE %s ADD COLUMN %s" % (table, column))
        if not self.db.execute("SELECT 1 FROM profiles WHERE is_default=1").fetchone():
            self.save_profile({"name": "default", "is_default": 1})

    def close(self):
        self.db.close()

    def _one(self, sql, *args):
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql, *args):
        return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    # provision profiles

    def save_profile(self, p):
        pid = p.get("id") or str(uuid.uuid4())
        self.db.execute(
            "INSERT INTO profiles (id, name, is_default, provision_type, provision_key,"
            " provision_secret, created_ts, transport) VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT(id) DO UPDATE SET name=excluded.name,"
            " provision_type=excluded.provision_type, provision_key=excluded.provision_key,"
            " provision_secret=excluded.provision_secret, transport=excluded.transport",
            (
                pid,
                p["name"],
                p.get("is_default", 0),
                p.get("provision_type") or "DISABLED",
                p.get("provision_key"),
                p.get("provision_secret"),
                now_ms(),
                json.dumps(p["transport"]) if p.get("transport") else None,
            ),
        )
        self.changed("profiles", None)
        return self.profile(pid)

    def profile(self, pid):
        return _profile(self._one("SELECT * FROM profiles WHERE id=?", pid))

    def default_profile(self):
        return _profile(self._one("SELECT * FROM profiles WHERE is_default=1"))

    def profile_by_key(self, key):
        return _profile(self._one("SELECT * FROM profiles WHERE provision_key=?", key))

    def profiles(self):
        return [_profile(p) for p in self._all("SELECT * FROM profiles ORDER BY created_ts, name")]

    def delete_profile(self, pid):
        self.db.execute("DELETE FROM profiles WHERE id=? AND is_default=0", (pid,))
        self.changed("profiles", None)

    # devices and credentials

    def create_device(self, name, token=None, profile_id=None, dtype=None, label=None):
        did = str(uuid.uuid4())
        profile_id = profile_id or self.default_profile()["id"]
        self.db.execute("BEGIN")
        try:
            self.db.execute(
                "INSERT INTO devices (id, name, type, label, profile_id, created_ts)"
                " VALUES (?,?,?,?,?,?)",
                (did, name, dtype or "default", label, profile_id, now_ms()),
            )
            self.db.execute(
                "INSERT INTO credentials (device_id, type, credentials_id) VALUES (?,?,?)",
                (did, "ACCESS_TOKEN", token or new_token()),
            )
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self.db.execute("ROLLBACK")
            raise
        self.changed("device", did)
        return self.device(did)

    def update_device(self, did, **fields):
        for key, value in fields.items():
            if key == "transport":
                value = json.dumps(value) if value else None
            self.db.execute("UPDATE devices SET %s=? WHERE id=?" % key, (value, did))
        self.changed("device", did)
        return self.device(did)

    def device(self, did):
        return _device(self._one("SELECT * FROM devices WHERE id=?", did))

    def device_by_name(self, name):
        return _device(self._one("SELECT * FROM devices WHERE name=?", name))

    def device_by_token(self, token):
        return _device(
            self._one(
                "SELECT d.* FROM devices d JOIN credentials c ON c.device_id=d.id"
                " WHERE c.type='ACCESS_TOKEN' AND c.credentials_id=?",
                token,
            )
        )

    def devices(self):
        return [_device(d) for d in self._all("SELECT * FROM devices ORDER BY created_ts, name")]

    def delete_device(self, did):
        for table in ("devices", "credentials", "telemetry", "attributes", "claims"):
            column = "id" if table == "devices" else "device_id"
            self.db.execute("DELETE FROM %s WHERE %s=?" % (table, column), (did,))
        self.changed("device_deleted", did)

    def credentials(self, did):
        return self._one("SELECT * FROM credentials WHERE device_id=?", did)

    def set_credentials(self, did, ctype, credentials_id, value=None):
        self.db.execute(
            "INSERT OR REPLACE INTO credentials (device_id, type, credentials_id, value)"
            " VALUES (?,?,?,?)",
            (did, ctype, credentials_id, value),
        )
        self.changed("device", did)

    # attributes

    def set_attributes(self, did, scope, values):
        ts = now_ms()
        self.db.executemany(
            "INSERT OR REPLACE INTO attributes VALUES (?,?,?,?,?)",
            [(did, scope, k, json.dumps(v), ts) for k, v in values.items()],
        )
        self.changed("attributes", did, scope=scope, values=values, ts=ts)

    def delete_attributes(self, did, scope, keys):
        self.db.executemany(
            "DELETE FROM attributes WHERE device_id=? AND scope=? AND key=?",
            [(did, scope, k) for k in keys],
        )
        self.changed("attributes", did, scope=scope, deleted=list(keys))

    def attributes(self, did, scope, keys=None):
        # -> [{key, value, last_update_ts}] ordered by key
        rows = self._all(
            "SELECT key, value, last_update_ts FROM attributes WHERE device_id=? AND scope=?"
            " ORDER BY key",
            did,
            scope,
        )
        out = []
        for r in rows:
            if keys is None or r["key"] in keys:
                r["value"] = json.loads(r["value"])
                out.append(r)
        return out

    def attribute_dict(self, did, scope, keys=None):
        return {r["key"]: r["value"] for r in self.attributes(did, scope, keys)}

    # telemetry

    def add_telemetry(self, did, entries):
        self.db.executemany(
            "INSERT OR REPLACE INTO telemetry VALUES (?,?,?,?)",
            [(did, k, ts, json.dumps(v)) for ts, values in entries for k, v in values.items()],
        )
        self.changed("telemetry", did, entries=entries)

    def telemetry_keys(self, did):
        rows = self.db.execute(
            "SELECT DISTINCT key FROM telemetry WHERE device_id=? ORDER BY key", (did,)
        )
        return [r[0] for r in rows]

    def latest(self, did, keys):
        out = {}
        for key in keys:
            row = self._one(
                "SELECT ts, value FROM telemetry WHERE device_id=? AND key=?"
                " ORDER BY ts DESC LIMIT 1",
                did,
                key,
            )
            if row:
                out[key] = [{"ts": row["ts"], "value": json.loads(row["value"])}]
        return out

    def history(self, did, keys, start, end, limit, ascending=False):
        out = {}
        order = "ASC" if ascending else "DESC"
        for key in keys:
            rows = self._all(
                "SELECT ts, value FROM telemetry WHERE device_id=? AND key=? AND ts>=? AND ts<?"
                " ORDER BY ts %s LIMIT ?" % order,
                did,
                key,
                start,
                end,
                limit,
            )
            if rows:
                out[key] = [{"ts": r["ts"], "value": json.loads(r["value"])} for r in rows]
        return out

    # RPC log: every server-side RPC; the persistent ones are ThingsBoard's Rpc entities

    def log_rpc(self, did, rpc_id, method, params, oneway, persistent=None):
        # persistent: {uuid, expiration_ts, retries, additional_info}, or None
        p = persistent or {}
        cur = self.db.execute(
            "INSERT INTO rpc (device_id, rpc_id, method, params, oneway, status, created_ts,"
            " uuid, persistent, expiration_ts, retries, additional_info)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                did,
                rpc_id,
                method,
                json.dumps(params),
                int(oneway),
                "QUEUED",
                now_ms(),
                p.get("uuid"),
                int(bool(persistent)),
                p.get("expiration_ts"),
                p.get("retries"),
                None if p.get("additional_info") is None else json.dumps(p["additional_info"]),
            ),
        )
        self.changed("rpc", did, row=cur.lastrowid)
        return cur.lastrowid

    def update_rpc(self, row, status, response=None, rpc_id=None):
        self.db.execute(
            "UPDATE rpc SET status=?, response=COALESCE(?, response),"
            " rpc_id=COALESCE(?, rpc_id) WHERE row=?",
            (status, None if response is None else json.dumps(response), rpc_id, row),
        )
        self.changed("rpc", None, row=row)

    def rpcs(self, did):
        return [
            _rpc(r) for r in self._all("SELECT * FROM rpc WHERE device_id=? ORDER BY row", did)
        ]

    def rpc(self, row):
        r = self._one("SELECT * FROM rpc WHERE row=?", row)
        return r and _rpc(r)

    def rpc_by_uuid(self, uuid_):
        r = self._one("SELECT * FROM rpc WHERE uuid=? AND persistent=1", uuid_)
        return r and _rpc(r)

    def persistent_rpcs(self, did=None, status=None):
        # oldest first; all devices' when did is None
        sql = "SELECT * FROM rpc WHERE persistent=1"
        args = []
        if did is not None:
            sql += " AND device_id=?"
            args.append(did)
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        return [_rpc(r) for r in self._all(sql + " ORDER BY created_ts, row", *args)]

    def delete_rpc(self, row):
        did = self._one("SELECT device_id FROM rpc WHERE row=?", row)
        self.db.execute("DELETE FROM rpc WHERE row=?", (row,))
        if did:
            self.changed("rpc_deleted", did["device_id"], row=row)

    # OTA packages

    def save_ota(self, pkg):
        pid = pkg.get("id") or str(uuid.uuid4())
        cols = (
            "type title version tag url data size checksum_algorithm checksum"
            " file_name content_type"
        ).split()
        values = [pkg.get(c) for c in cols]
        self.db.execute(
            "INSERT INTO ota (id, %s, created_ts) VALUES (?,%s,?) ON CONFLICT(id) DO UPDATE SET %s"
            % (", ".join(cols), ",".join("?" * len(cols)), ", ".join(c + "=?" for c in cols)),
            (pid, *values, pkg.get("created_ts") or now_ms(), *values),
        )
        self.changed("packages", None)
        return self.ota(pid)

    def ota(self, pid, with_data=False):
        cols = (
            "*"
            if with_data
            else "id, type, title, version, tag, url, size,"
            + (
                " checksum_algorithm, checksum, file_name, content_type, created_ts,"
                " data IS NOT NULL AS has_data"
            )
        )
        return self._one("SELECT %s FROM ota WHERE id=?" % cols, pid)

    def ota_list(self):
        return [self.ota(r["id"]) for r in self._all("SELECT id FROM ota ORDER BY created_ts")]

    def delete_ota(self, pid):
        self.db.execute("DELETE FROM ota WHERE id=?", (pid,))
        self.changed("packages", None)

    # claiming

    def set_claim(self, did, secret, expires_ts):
        self.db.execute(
            "INSERT OR REPLACE INTO claims VALUES (?,?,?,0)", (did, secret, expires_ts)
        )

    def claim(self, did):
        return self._one("SELECT * FROM claims WHERE device_id=?", did)

    def mark_claimed(self, did):
        self.db.execute("UPDATE claims SET claimed=1 WHERE device_id=?", (did,))
