# page_latency.py: tbsim's page under load. tbsim runs as its own process; N lightweight CoAP
# devices (this process, asyncio, the project codec) each post a CON telemetry message once a
# second; Debian's chromium (Playwright) shows the page with one device chosen (its charts
# drawn) and the list of all of them. Reports the page's update latency (the server's event
# time to the frame that drew it, for every telemetry event), how late a 100 ms timer in the
# page ran (is it responsive), and tbsim's CPU with the page open and with no page.
# Usage: .venv/bin/python bench/page_latency.py [--devices 50] [--seconds 30]
import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.test_page import chromium  # noqa: E402
from tools.tbsim.wire import Message, codec  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


class Device(asyncio.DatagramProtocol):
    # posts {"temperature", "humidity", "seq"} every second; ACKs tbsim's separate responses
    def __init__(self, token, stats):
        self.token = token
        self.stats = stats
        self.mid = random.randrange(65536)
        self.seq = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        msg = Message.decode(data)
        if msg.type == codec.CON:
            self.transport.sendto(Message(codec.ACK, 0, msg.mid, b"", [], b"").encode())
        if msg.code == codec.CREATED:
            self.stats["created"] += 1

    def post(self):
        self.mid = (self.mid + 1) & 0xFFFF
        self.seq += 1
        body = {"temperature": 20 + random.random() * 5, "humidity": 40 + self.seq % 20}
        body["seq"] = self.seq
        opts = [(codec.URI_PATH, p.encode()) for p in ("api", "v1", self.token, "telemetry")]
        tok = self.mid.to_bytes(2, "big")
        msg = Message(codec.CON, codec.POST, self.mid, tok, opts, json.dumps(body).encode())
        self.transport.sendto(msg.encode())
        self.stats["sent"] += 1


async def devices(port, tokens, stop, stats):
    loop = asyncio.get_running_loop()
    devs = []
    for t in tokens:
        _, d = await loop.create_datagram_endpoint(
            lambda t=t: Device(t, stats), remote_addr=("127.0.0.1", port)
        )
        devs.append(d)
    start = loop.time()
    n = len(devs)
    i = 0
    while not stop.is_set():  # one post per device per second, spread over the second
        await asyncio.sleep(max(0.0, start + i / n - loop.time()))
        devs[i % n].post()
        i += 1


def http(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def cpu_seconds(pid):
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def cpu_percent(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")


LAG = """() => { window.benchLag = []; let last = performance.now();
  setInterval(() => { const now = performance.now(); benchLag.push(now - last - 100);
  last = now; }, 100); }"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="page-bench-"))
    cmd = [sys.executable, "-m", "tools.tbsim", "--quiet", "--coap-port", "0"]
    cmd += ["--http-port", "0", "--data", str(work / "tbsim")]
    sim = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    job = None
    try:
        ready = sim.stdout.readline().split()  # tbsim ready coap=P http=P
        coap, web = (int(f.split("=")[1]) for f in ready[2:4])
        tokens = ["BENCH_TOKEN_%03d" % i for i in range(a.devices)]
        for i, t in enumerate(tokens):
            http(web, "POST", "/api/device?accessToken=" + t, {"name": "bench-%03d" % i})
        first = http(web, "GET", "/api/tenant/devices?deviceName=bench-000")["id"]["id"]
        stats = {"sent": 0, "created": 0}
        loop = asyncio.new_event_loop()
        job = threading.Thread(
            target=loop.run_until_complete, args=(devices(coap, tokens, stop, stats),)
        )
        job.start()
        time.sleep(3)  # every device has posted a few times
        idle = cpu_percent(sim.pid, a.seconds / 2)
        with sync_playwright() as p:
            ctx = chromium(p, work / "chromium", 1000)
            page = ctx.new_page()
            page.goto("http://127.0.0.1:%d/#%s" % (web, first))
            page.wait_for_function("() => document.querySelectorAll('tr.device').length >= 1")
            page.wait_for_function("() => document.querySelector('.chart canvas')")
            page.evaluate(LAG)
            page.evaluate("() => { window.tbsimLatency.length = 0; }")
            before = stats["created"]
            busy = cpu_percent(sim.pid, a.seconds)
            answered = stats["created"] - before
            lat = page.evaluate("() => window.tbsimLatency.slice()")
            lag = page.evaluate("() => window.benchLag.slice()")
            rows = page.locator("tr.device").count()
            points = page.locator(".chart").first.get_attribute("data-points")
            (ROOT / "build" / "artefacts").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ROOT / "build" / "artefacts" / "page_bench.png"))
            ctx.close()
    finally:
        stop.set()
        if job is not None:
            job.join(5)
        sim.terminate()
        sim.wait(10)
    print(
        "page_bench devices %d, %.0f s, %d telemetry messages stored (%.1f/s)"
        % (a.devices, a.seconds, answered, answered / a.seconds)
    )
    print("page_bench rows %d, chart points %s" % (rows, points))
    print(
        "page_bench latency ms (server event -> drawn frame, %d events): p50 %.1f, p95 %.1f,"
        " p99 %.1f, max %.1f" % (len(lat), pct(lat, 50), pct(lat, 95), pct(lat, 99), max(lat))
    )
    print(
        "page_bench 100 ms timer lateness ms: p50 %.1f, p95 %.1f, max %.1f"
        % (pct(lag, 50), pct(lag, 95), max(lag))
    )
    print("page_bench tbsim cpu %% of one core: %.1f with the page, %.1f without" % (busy, idle))


if __name__ == "__main__":
    main()
