# run_coap.py: runs bench/coap_post.py on the unix port against bench/responder.py, once
# with piggybacked responses and once ThingsBoard-style (separate CON, ACKed by the client),
# and prints the numbers. Usage: .venv/bin/python bench/run_coap.py [N]
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(style, n):
    args = [sys.executable, str(ROOT / "bench" / "responder.py")]
    if style == "separate":
        args.append("--separate")
    srv = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        port = srv.stdout.readline().strip()
        env = dict(os.environ, MICROPYPATH="%s:.frozen" % (ROOT / "lib"))
        out = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "micropython"), str(ROOT / "bench" / "coap_post.py")]
            + [port, str(n)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if out.returncode:
            raise SystemExit(out.stdout + out.stderr)
        return dict(line.split() for line in out.stdout.splitlines())
    finally:
        srv.kill()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print("sequential CON POST, 34-byte JSON to api/v1/<20-char token>/telemetry, %d requests" % n)
    for style in ("piggybacked", "separate"):
        r = run(style, n)
        print(
            "%-12s %7s us/request  %6s heap B/request  request %s B  response %s B"
            % (
                style,
                r["us_per_request"],
                r["heap_bytes_per_request"],
                r["request_bytes"],
                r["response_bytes"],
            )
        )


if __name__ == "__main__":
    main()
