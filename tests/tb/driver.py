# driver.py (MicroPython): lib/thingsboard on the unix port, driven by JSON lines on stdin so
# a pytest test can act on both sides: it drives tbsim directly and the device through this.
# Each command gets one reply line "=> {...}"; events (attribute changes, RPCs) are printed
# as "!! {...}" when they happen.
import asyncio
import json
import sys

from coap.client import connect
from thingsboard.device import Device
from thingsboard.provision import provision

state = {}


def out(prefix, obj):
    print(prefix, json.dumps(obj))


def rpc_handler(method, params):
    out("!!", {"event": "rpc", "method": method, "params": params})
    if method == "fail":
        raise ValueError("asked to fail")
    if method == "slow":
        return slow(params)
    return {"echo": params}


async def slow(params):
    await asyncio.sleep_ms(int(params))
    return {"slept": params}


async def run(cmd):
    op = cmd["op"]
    if op == "connect":
        client = connect(cmd["host"], cmd["port"], **cmd.get("client", {}))
        state["client"] = client
        state["payload"] = None
        if "schema" in cmd:  # a PROTOBUF profile's schema description
            from thingsboard.protopayload import ProtoPayload

            log = lambda *a: out("!!", {"event": "log", "text": " ".join(str(x) for x in a)})  # noqa: E731
            state["payload"] = ProtoPayload(cmd["schema"], log)
        if "token" in cmd:
            d = Device(client, cmd["token"], payload=state["payload"], **cmd.get("device", {}))
            d.log = lambda *a: out("!!", {"event": "log", "text": " ".join(str(x) for x in a)})
            state["device"] = d
        return True
    d = state.get("device")
    if op == "observe":
        for key in cmd.get("keys", ()):
            d.subscribe_to_attribute(key, lambda k, v: out("!!", {"event": "attr", k: v}))
        d.subscribe_to_all_attributes(lambda data: out("!!", {"event": "attrs", "data": data}))
        if cmd.get("rpc", True):
            d.set_server_side_rpc_request_handler(rpc_handler)
        d.start()
        while not all(o.active for o in d._subs):
            await asyncio.sleep_ms(5)
        return True
    if op == "call":
        return await getattr(d, cmd["fn"])(*cmd.get("args", ()), **cmd.get("kw", {}))
    if op == "provision":
        state["client"].start()
        kw = dict(cmd.get("kw", {}), payload=state["payload"])
        return await provision(state["client"], *cmd["args"], **kw)
    if op == "chunks":  # OTA chunk downloads, the last one past the end
        import hashlib

        h = hashlib.sha256()
        lengths = []
        ex = state["client"].exchange()
        for n in range(cmd["count"]):
            try:
                await d.request_chunk(ex, "fw", cmd["title"], cmd["version"], cmd["size"], n, 3000)
                lengths.append(len(ex.payload()))
                h.update(ex.payload())
            except Exception as e:
                lengths.append(type(e).__name__)
        return {"lengths": lengths, "sha256": "".join("%02x" % b for b in h.digest())}
    if op == "reconnected":
        d.reconnected()
        return True
    if op == "stats":
        return {"device": d.stats, "client": state["client"].stats}
    if op == "wait_resubscribed":
        while d.stats["resubscribe"] < cmd["count"] or not all(o.active for o in d._subs):
            await asyncio.sleep_ms(5)
        return d.stats["resubscribe"]
    raise ValueError("unknown op %s" % op)


async def main():
    reader = asyncio.StreamReader(sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        cmd = json.loads(line)
        try:
            out("=>", {"ok": await run(cmd)})
        except Exception as e:
            out("=>", {"error": type(e).__name__, "message": str(e)})


asyncio.run(main())
