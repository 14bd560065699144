# payload_mp.py (MicroPython): one telemetry message of the sample device encoded by each
# payload format: body bytes, CoAP datagram bytes, heap per message (gc.mem_alloc growth with
# the GC off over N encodings) and the heap the format's code and schema keep once loaded.
# Run by bench/payload_size.py: micropython payload_mp.py SCHEMA_FILE N
import gc
import sys

from coap.codec import CON, POST
from coap.message import Message
from coap.uri import uri_options

READING = {
    "ts": 1764000000000,
    "values": {
        "chip_temp": 41.5,
        "temperature": 21.5,
        "air_temperature": 22.4,
        "air_humidity": 51.0,
        "soil": 37.2,
        "soil_raw": 24380,
    },
}
OPTS = uri_options("api/v1/A1B2C3D4E5F6G7H8I9J0/telemetry")


def measure(name, fmt, n, loaded):
    body = fmt.telemetry(READING)
    datagram = Message(CON, POST, 1, b"\x01\x02\x03\x04", OPTS, body).encode()
    for _ in range(3):
        fmt.telemetry(READING)  # warm up caches (the schema's field index)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(n):
        fmt.telemetry(READING)
    per = (gc.mem_alloc() - before) / n
    gc.enable()
    print(name, len(body), len(datagram), "%.0f" % per, loaded)


def main():
    schema, n = sys.argv[1], int(sys.argv[2])
    gc.collect()
    base = gc.mem_alloc()
    from thingsboard import jsonpayload

    gc.collect()
    measure("json", jsonpayload, n, gc.mem_alloc() - base)
    gc.collect()
    base = gc.mem_alloc()
    from thingsboard.protopayload import load

    fmt = load(schema)
    fmt.telemetry(READING)
    gc.collect()
    measure("protobuf", fmt, n, gc.mem_alloc() - base)


main()
