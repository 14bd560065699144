"""An aiocoap 0.4 server used as a CoAP peer by the interop tests (run under CPython).

    python aiocoap_server.py PORT BIG_FILE

Prints "READY <port>" on stdout once it listens on 127.0.0.1:PORT. Resources:
  /hello     GET: a short text
  /big       GET: the bytes of BIG_FILE (aiocoap sends them with Block2)
  /echo      POST/PUT: the request payload back (2.04); aiocoap reassembles Block1 uploads.
             GET: "<length> <sha256 hex>" of the last payload POSTed or PUT
  /query     GET: the Uri-Query options joined with "&"
  /counter   GET, observable: a counter that increases every 0.2 s (a notification each time)
  /observers GET: how many observers /counter has now
  /token     GET: the request's token in hex
"""

import asyncio
import hashlib
import sys

import aiocoap
import aiocoap.resource as resource

INTERVAL = 0.2


class Hello(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=b"hello from aiocoap", content_format=0)


class Big(resource.Resource):
    def __init__(self, data):
        super().__init__()
        self.data = data

    async def render_get(self, request):
        return aiocoap.Message(payload=self.data, content_format=42)


class Echo(resource.Resource):
    def __init__(self):
        super().__init__()
        self.last = b""

    async def render_get(self, request):
        digest = "%d %s" % (len(self.last), hashlib.sha256(self.last).hexdigest())
        return aiocoap.Message(payload=digest.encode(), content_format=0)

    async def _echo(self, request):
        self.last = request.payload
        return aiocoap.Message(code=aiocoap.CHANGED, payload=request.payload)

    render_post = _echo
    render_put = _echo


class Query(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload="&".join(request.opt.uri_query).encode())


class Token(resource.Resource):
    async def render_get(self, request):
        return aiocoap.Message(payload=request.token.hex().encode())


class Counter(resource.ObservableResource):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.observers = 0

    def update_observation_count(self, count):
        self.observers = count

    async def tick(self):
        while True:
            await asyncio.sleep(INTERVAL)
            self.count += 1
            self.updated_state()

    async def render_get(self, request):
        return aiocoap.Message(payload=b"%d" % self.count, content_format=0)


class Observers(resource.Resource):
    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    async def render_get(self, request):
        return aiocoap.Message(payload=b"%d" % self.counter.observers)


async def main(port, big):
    counter = Counter()
    root = resource.Site()
    root.add_resource(["hello"], Hello())
    root.add_resource(["big"], Big(big))
    root.add_resource(["echo"], Echo())
    root.add_resource(["query"], Query())
    root.add_resource(["counter"], counter)
    root.add_resource(["observers"], Observers(counter))
    root.add_resource(["token"], Token())
    await aiocoap.Context.create_server_context(
        root, bind=("127.0.0.1", port), transports=["udp6"]
    )
    ticker = asyncio.create_task(counter.tick())
    print("READY", port, flush=True)
    await asyncio.get_running_loop().create_future()  # serve until killed
    ticker.cancel()


if __name__ == "__main__":
    with open(sys.argv[2], "rb") as f:
        data = f.read()
    asyncio.run(main(int(sys.argv[1]), data))
