# libcoap's coap-server-openssl as a DTLS peer for tests (Debian libcoap3-bin): started on a
# free port, ready once its coaps socket is bound, restartable on the same port.
import shutil
import socket
import subprocess

from tests.procs import stop, wait_bound  # noqa: F401 (stop: tests take it from here)

SERVER = shutil.which("coap-server-openssl")


def _free_pair():
    # a port P with P+1 free too: libcoap serves coap on -p P and coaps on P+1
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
        return p
    raise RuntimeError("no two adjacent free UDP ports")


class DtlsServer:
    def __init__(self, args, log=None):
        # log: a file for the server's output (with "-v", "7" in args: every PDU it receives)
        self.log = log
        self.args = [str(a) for a in args]
        self.base = _free_pair()
        self.port = self.base + 1
        self.proc = None
        self.start()

    def start(self):
        cmd = [SERVER, "-A", "127.0.0.1", "-p", str(self.base)] + self.args
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        wait_bound(self.port, self.proc)

    def restart(self):
        # a new process on the same port: every DTLS session is forgotten
        stop(self.proc)
        self.start()
