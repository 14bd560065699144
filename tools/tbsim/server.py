# server.py: TbSim ties the pieces together and runs them, either on the caller's asyncio loop
# (astart/astop) or on a loop of its own in a background thread (start/stop), which is what
# tests and `make run` use. The thread-side helpers marshal every call onto that loop.
import asyncio
import threading

from . import ota
from .admin import Admin
from .core import Core
from .events import EventLog
from .faults import Faults
from .live import Live
from .observe import Registry
from .ratelimit import RateLimits
from .resources import Resources
from .store import Store, now_ms
from .transport import Params, Transport


class TbSim:
    def __init__(
        self,
        data_dir,
        coap_port=5683,
        http_port=8080,
        host="127.0.0.1",
        http_host="127.0.0.1",
        piggyback=False,
        piggyback_timeout=0.5,
        ack_timeout=2.0,
        ack_random=1.5,
        max_retransmit=4,
        exchange_lifetime=247.0,
        sync_timeout=10.0,
        faults=None,
        fault_seed=0,
        drop_observes_every=0.0,
        rpc_handler=None,
        inactivity_timeout=60.0,
        rate_limits=None,
        clock=None,
        log=True,
    ):
        self.data_dir = data_dir
        self.host, self.http_host = host, http_host
        self.coap_port, self.http_port = coap_port, http_port
        self.params = Params(
            ack_timeout,
            ack_random,
            max_retransmit,
            exchange_lifetime,
            piggyback_timeout,
            piggyback,
        )
        self.sync_timeout = sync_timeout
        self.faults = Faults(fault_seed)
        if faults:
            self.faults.configure(faults)
        self.rpc_handler = rpc_handler
        self.drop_every = drop_observes_every
        self.inactivity_timeout = inactivity_timeout
        # ThingsBoard's transport.rate_limits: {"device": "10:1,300:60", "tenant": ...}
        self.limits = RateLimits(**(rate_limits or {}))
        self.clock = clock  # ms for RPC expiry and power saving; tests pass a fake one
        self._dropper = None
        self.events = EventLog(enabled=log) if isinstance(log, bool) else log
        self.loop = None
        self._thread = None
        self.store = self.core = self.transport = self.registry = None

    def log(self, *fields):
        self.events.line(*fields)

    # running on the caller's loop

    async def astart(self):
        self.loop = asyncio.get_running_loop()
        self.store = Store(self.data_dir)
        self.transport = Transport(self.params, self.faults, None, self.log)
        self.registry = Registry(self.transport, self.log)
        self.core = Core(
            self.store, self.registry, self.log, self.rpc_handler, self.clock or now_ms
        )
        self.core.limits = self.limits
        self.core.restore()
        self.resources = resources = Resources(
            self.core, self.registry, self.log, self.sync_timeout
        )
        self.transport.handler = resources.handle
        await self.loop.create_datagram_endpoint(
            lambda: self.transport, local_addr=(self.host, self.coap_port)
        )
        self.coap_port = self.transport.sock.get_extra_info("sockname")[1]
        self.admin = Admin(self)
        self.live = Live(self.store, self.core, self.faults, self.admin, self.inactivity_timeout)
        self._http = await asyncio.start_server(self.admin.serve, self.http_host, self.http_port)
        self.http_port = self._http.sockets[0].getsockname()[1]
        if self.drop_every > 0:
            self._dropper = self.loop.call_later(self.drop_every, self._drop_periodically)
        self.log(
            "tbsim ready coap=udp://%s:%d http=http://%s:%d data=%s"
            % (self.host, self.coap_port, self.http_host, self.http_port, self.data_dir)
        )
        return self

    async def astop(self):
        if self._dropper:
            self._dropper.cancel()
        self.live.close()
        self._http.close()
        await self._http.wait_closed()
        self.transport.close()
        self.store.close()
        self.log("tbsim stopped")

    def drop_observes(self):
        # every observe relation forgotten without a word, as a server restart would
        self.faults.observe_drops += 1
        self.registry.drop_all()
        self.faults.announce()

    def _drop_periodically(self):
        self.drop_observes()
        self._dropper = self.loop.call_later(self.drop_every, self._drop_periodically)

    # running on a thread of its own

    def start(self, timeout=10.0):
        ready = threading.Event()
        failure = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as e:  # report to the starting thread, then end
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            # RPCs and handlers still waiting end with the server
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(self.astop())
            loop.close()

        self._thread = threading.Thread(target=run, name="tbsim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("tbsim did not start within %s s" % timeout)
        if failure:
            raise failure[0]
        return self

    def stop(self):
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._thread = None

    def call(self, fn, *args, timeout=30.0, **kwargs):
        # run fn (plain or async) on the server loop and return its result to this thread
        async def runner():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    # conveniences for tests and scripts (thread mode)

    def create_device(self, name, token=None, profile_id=None):
        dev = self.call(self.store.create_device, name, token, profile_id)
        creds = self.call(self.store.credentials, dev["id"])
        return dict(dev, token=creds["credentials_id"])

    def set_shared(self, device_id, values):
        self.call(self.core.set_shared, device_id, values)

    def delete_shared(self, device_id, keys):
        self.call(self.core.delete_shared, device_id, keys)

    def rpc(self, device_id, method, params=None, timeout=10.0, oneway=False):
        # blocks until the device answers (two-way), delivery (one-way) or RpcTimeout
        coro = self.core.server_rpc
        return self.call(coro, device_id, method, params, timeout, oneway, timeout=timeout + 5)

    def telemetry_posts(self, device_id):
        # telemetry messages stored for the device (retransmissions are not processed again)
        return self.call(lambda: self.resources.telemetry_posts.get(device_id, 0))

    def telemetry(self, device_id, keys=None):
        def latest():
            return self.store.latest(device_id, keys or self.store.telemetry_keys(device_id))

        return self.call(latest)

    def attributes(self, device_id, scope):
        return self.call(self.store.attribute_dict, device_id, scope)

    def add_ota(self, title, version, data, ota_type="FIRMWARE", algorithm="SHA256", **kw):
        # a package with data, as the admin API's upload leaves it (checksum= overrides the
        # computed one, e.g. to test a device's verification) -> its id
        pkg = dict(type=ota_type, title=title, version=version, data=data, size=len(data))
        pkg.update(checksum_algorithm=algorithm, checksum=ota.checksum(data, algorithm))
        pkg.update(file_name="%s-%s.bin" % (title, version), content_type="application/binary")
        pkg.update(kw)
        return self.call(self.store.save_ota, pkg)["id"]

    def assign_ota(self, device_id, package_id, ota_type="FIRMWARE"):
        # package_id None unassigns: the fw_*/sw_* attributes are deleted
        self.call(self.core.assign_ota, device_id, ota_type, package_id)
