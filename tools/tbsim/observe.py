# observe.py: observe relations as Californium keeps them for ThingsBoard (transport reference
# §3): per-relation Observe counter from 0, random MIDs, the subscribe GET's type for every
# notification, one CON in flight (a newer one replaces a queued older one), all relations of
# a peer cancelled when a CON notification runs out of retransmissions.
import json

from .transport import Reliable
from .wire import Message, codec, message

DELIVERED, DROPPED, TIMEOUT, CANCELLED = "delivered", "dropped", "timeout", "cancelled"


class _Note:
    def __init__(self, code, payload, on_done, exchange=None):
        self.code = code
        self.payload = payload
        self.on_done = on_done
        self.exchange = exchange  # the subscribe GET, when this is its first response

    def done(self, status):
        if self.on_done:
            self.on_done(status)


class Relation:
    def __init__(self, registry, peer, token, kind, device, con, content_format):
        self.reg = registry
        self.peer = peer
        self.token = token
        self.kind = kind  # "attributes" or "rpc"
        self.device = device  # store row
        self.con = con
        self.content_format = content_format
        self.counter = 0
        self.active = True
        self.in_flight = None
        self.out = None  # transport record of the in-flight CON
        self.queued = None
        self.state = Reliable(
            registry.t.params.max_retransmit,
            on_ack=self._acked,
            on_rst=lambda: registry.cancel(self, "RST"),
            on_timeout=lambda: registry.cancel_peer(peer, "notification timed out"),
        )

    def first_response(self, ex, code, payload, explicit):
        # Observe 0. TB forces the type of the 2.03 (a paced CON), not of the 2.05 (§2.2, §13).
        t = self.reg.t
        if explicit and ex.con and not t.params.piggyback:
            self._enqueue(_Note(code, payload, None, ex))
            return
        options = [(codec.OBSERVE, self.counter)]
        if payload:
            options.append((codec.CONTENT_FORMAT, self.content_format))
        self.counter += 1
        ex.respond(code, payload, options, explicit=explicit)

    def notify(self, payload, on_done=None, code=codec.CONTENT):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload, separators=(",", ":")).encode()
        self._enqueue(_Note(code, payload, on_done))

    def _enqueue(self, note):
        if not self.active:
            note.done(CANCELLED)
        elif not self.con:
            self._send(note)
            note.done(DELIVERED)
        elif self.in_flight is None:
            self._send(note)
        else:
            if self.queued is not None:
                self.queued.done(DROPPED)
            self.queued = note

    def _send(self, note):
        t = self.reg.t
        mid = t.random_mid(self.peer)
        options = [(codec.OBSERVE, self.counter & 0xFFFFFF)]
        if note.payload:
            options.append((codec.CONTENT_FORMAT, self.content_format))
        self.counter += 1
        mtype = codec.CON if self.con else codec.NON
        data = Message(mtype, note.code, mid, self.token, options, note.payload).encode()
        self.reg.log_note(self, note, mtype)
        if mtype == codec.CON:
            self.in_flight = note
            out = self.out = t.send_con(self.peer, mid, data, self.state)
        else:
            t.track_non(self.peer, mid, self.state)
            t.send(self.peer, data)
            out = None
        if note.exchange is not None:
            note.exchange.adopt(data, out, note.code)

    def _acked(self):
        note, self.in_flight, self.out = self.in_flight, None, None
        if note is not None:
            note.done(DELIVERED)
        if self.queued is not None and self.active:
            note, self.queued = self.queued, None
            self._send(note)
        if self.reg.on_ack:
            self.reg.on_ack(self.device["id"])

    def stop(self):
        # relation gone: whatever was waiting is never delivered on it
        self.active = False
        if self.out is not None:
            self.reg.t.forget(self.out)  # an old relation must not time out a new one
        for note in (self.in_flight, self.queued):
            if note is not None:
                note.done(CANCELLED)
        self.in_flight = self.queued = self.out = None


class Registry:
    def __init__(self, transport, log):
        self.t = transport
        self.log = log
        self.relations = {}  # (peer, token) -> Relation
        self.on_ack = None  # on_ack(device id): a CON notification was ACKed

    def get(self, device_id, kind):
        for rel in self.relations.values():
            if rel.device["id"] == device_id and rel.kind == kind:
                return rel
        return None

    def subscribe(self, ex, kind, device):
        # One relation per device and kind; a new key replaces the old one, which gets 2.02.
        key = (ex.peer, ex.msg.token)
        old = self.get(device["id"], kind)
        same = self.relations.get(key)
        if same is not None:
            self.cancel(same, "re-subscribed with the same token")
        if old is not None and old is not same:
            self.cancel(old, "replaced by a new subscription", deleted=True)
        cf = ex.msg.uint(codec.CONTENT_FORMAT, codec.JSON)
        rel = Relation(self, ex.peer, ex.msg.token, kind, device, ex.con, cf)
        self.relations[key] = rel
        return rel

    def by_request(self, ex):
        return self.relations.get((ex.peer, ex.msg.token))

    def cancel(self, rel, reason, deleted=False):
        if self.relations.get((rel.peer, rel.token)) is rel:
            del self.relations[(rel.peer, rel.token)]
        rel.stop()
        self.log("observe", rel.kind, rel.device["name"], "cancelled:", reason)
        if deleted:
            self._send_deleted(rel)

    def _send_deleted(self, rel):
        # 2.02 with Observe 0 on the old token (§3.4, §13); if it is never ACKed, the peer
        # loses every relation, even ones made since.
        mtype = codec.CON if rel.con else codec.NON
        mid = self.t.random_mid(rel.peer)
        msg = Message(mtype, codec.DELETED, mid, rel.token, [(codec.OBSERVE, 0)])
        if mtype == codec.CON:
            state = Reliable(
                self.t.params.max_retransmit,
                on_timeout=lambda: self.cancel_peer(rel.peer, "2.02 timed out"),
            )
            self.t.send_con(rel.peer, mid, msg.encode(), state)
        else:
            self.t.send(rel.peer, msg.encode())

    def cancel_peer(self, peer, reason):
        for rel in [r for r in self.relations.values() if r.peer == peer]:
            self.cancel(rel, reason)

    def cancel_device(self, device_id, reason):
        for rel in [r for r in self.relations.values() if r.device["id"] == device_id]:
            self.cancel(rel, reason, deleted=True)

    def drop_all(self):
        # as a server restart would: relations forgotten, nothing sent to anyone
        for rel in list(self.relations.values()):
            self.cancel(rel, "dropped (server restart)")
        self.t.forget_all()

    def log_note(self, rel, note, mtype):
        self.log(
            "notify",
            rel.device["name"],
            rel.kind,
            "obs=%d" % (rel.counter - 1),
            codec.code_str(note.code),
            message.TYPES[mtype],
            "token=" + rel.token.hex(),
            note.payload.decode(errors="replace")[:60],
        )
