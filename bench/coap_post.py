# coap_post.py (MicroPython): sequential CON POSTs of a 34-byte telemetry payload.
# Usage: micropython coap_post.py PORT [N]. Prints µs per request, heap bytes allocated per
# request and response (gc.mem_alloc delta with the GC off) and the datagram sizes.
# Timing runs with the GC on, as on a device.
import asyncio
import gc
import sys
import time

from coap.client import connect
from coap.codec import CON, CREATED, POST, encode
from coap.uri import uri_options

TOKEN = "A1B2C3D4E5F6G7H8I9J0"  # 20 characters, like a ThingsBoard access token
PAYLOAD = b'{"temperature":21.5,"humidity":40}'


async def main(port, n):
    client = connect("127.0.0.1", port)
    client.start()
    ex = client.exchange()
    opts = [(o, v.encode()) for o, v in uri_options("api/v1/%s/telemetry" % TOKEN)]
    for _ in range(100):  # warm up: first allocations of lists and dicts
        await ex.request(POST, opts, PAYLOAD)
    assert ex.code == CREATED, ex.code
    t0 = time.ticks_us()
    for _ in range(n):
        await ex.request(POST, opts, PAYLOAD)
    t1 = time.ticks_us()
    # allocation over fewer requests: with the GC off, the heap must hold them all
    m = min(n, 500)
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for _ in range(m):
        await ex.request(POST, opts, PAYLOAD)
    a1 = gc.mem_alloc()
    gc.enable()
    print("us_per_request %.1f" % (time.ticks_diff(t1, t0) / n))
    print("heap_bytes_per_request %.1f" % ((a1 - a0) / m))
    # the exchange's buffer now holds the last response; re-encode to size the request
    print("request_bytes %d" % encode(bytearray(256), CON, POST, 0, ex.token, opts, PAYLOAD))
    print("response_bytes %d" % ex.view.n)
    print("retransmissions %d" % client.stats["retransmit"])


port = int(sys.argv[1])
asyncio.run(main(port, int(sys.argv[2]) if len(sys.argv) > 2 else 5000))
