# procs.py: the server processes tests start (libcoap's coap-server, with or without DTLS):
# ready once their socket is bound, stopped whatever state they are in.
import select
import subprocess
import time


def udp_bound(port):
    # True once some socket is bound to 127.0.0.1:port (reads /proc, sends nothing)
    want = "0100007F:%04X" % port
    with open("/proc/net/udp") as f:
        return any(line.split()[1:2] == [want] for line in f)


def wait_bound(port, proc, deadline=5.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        if udp_bound(port):
            return
        select.select([], [], [], 0.01)  # a short poll interval, not a wait for the server
    raise TimeoutError("nothing bound to 127.0.0.1:%d" % port)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
