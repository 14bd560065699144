# demo_device.py (MicroPython): what `make run` drives until the firmware lands: a device on
# lib/coap talking ThingsBoard's CoAP API. It posts simulated telemetry, observes shared
# attributes and server-side RPC (answering each), and prints what happens.
# Usage: micropython demo_device.py HOST PORT TOKEN [SECONDS]
import asyncio
import json
import random
import sys

from coap.client import CoapTimeout, connect
from coap.codec import CREATED, POST, code_str
from coap.uri import uri_options


async def main(host, port, token, seconds):
    client = connect(host, port)
    client.start()
    api = "api/v1/%s/" % token
    seen = []  # RPC ids answered (ThingsBoard re-sends pending ones on re-subscribe)

    def on_attributes(obs):
        if obs.active:
            print("device: shared attributes", bytes(obs.payload()).decode() or "{}")
        else:
            print("device: attribute subscription ended with", code_str(obs.code))

    def on_rpc(obs):
        if not obs.active or not obs.payload():
            return
        rpc = json.loads(bytes(obs.payload()))
        if rpc["id"] not in seen:
            seen.append(rpc["id"])
            print("device: rpc", rpc)
            asyncio.create_task(answer(rpc))

    async def answer(rpc):
        body = json.dumps({"result": rpc.get("params")}).encode()
        ex = await client.request(POST, uri_options(api + "rpc/%d" % rpc["id"]), body)
        print("device: rpc reply ->", code_str(ex.code))

    await client.observe(uri_options(api + "attributes"), on_attributes)
    await client.observe(uri_options(api + "rpc"), on_rpc)
    ex = client.exchange()
    telemetry = uri_options(api + "telemetry")
    t = 21.5
    for _ in range(max(1, seconds // 2)):
        t += (random.getrandbits(4) - 8) / 20
        body = '{"temperature":%.2f,"humidity":%d}' % (t, 40 + random.getrandbits(3))
        try:
            await ex.request(POST, telemetry, body.encode())
            ok = "ok" if ex.code == CREATED else code_str(ex.code)
            print("device: telemetry", body, "->", ok)
        except CoapTimeout as e:
            print("device: telemetry", body, "->", e)
        await asyncio.sleep(2)


host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
asyncio.run(main(host, port, token, int(sys.argv[4]) if len(sys.argv) > 4 else 10**9))
