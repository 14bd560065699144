# `make run`'s script end to end: tbsim and the firmware on the unix port (simulated board)
# exchange telemetry, a shared attribute and RPCs, and the server stores what the device sent;
# the README's sample output is what it prints; ports in use are named, not a traceback.
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# what differs from run to run: times, ports, tokens, ids, folders
VARIES = [
    (r"^\d\d:\d\d:\d\d ", "HH:MM:SS "),
    (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
    (r"token=[0-9a-f]{8}", "token=TOKEN"),
    (r"/api/v1/[^/ ]{4}…/", "/api/v1/TOKEN…/"),
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID"),
    (r"^(HH:MM:SS rpc )[0-9a-f]{8} ", r"\1ID "),
    (r"data=\S+", "data=DIR"),
    (r" in \S+, admin", " in DIR, admin"),
]


def normal(line):
    for pattern, to in VARIES:
        line = re.sub(pattern, to, line)
    return line


def readme_sample():
    # the README's block of make run output: the one that starts with the page's URL
    blocks, block = [], None
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            block = [] if block is None else blocks.append(block)
        elif block is not None:
            block.append(line)
    (sample,) = [b for b in blocks if b and b[0].startswith("tbsim page: ")]
    return sample


def run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "tools.run", "--coap-port", "0", "--http-port", "0"]
        + ["--data", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_run_firmware_and_server_talk(tmp_path):
    p = run(tmp_path, "--seconds", "8")
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    assert re.fullmatch(r"tbsim page: http://127\.0\.0\.1:\d+/", out.splitlines()[0]), out
    assert "I app: telemetry interval now 3 s" in out
    assert "operator: rpc setGpio -> {'pin': 26, 'value': 1}" in out
    assert "operator: rpc getGpioStatus -> {'35': False, '26': True}" in out
    assert "run: stored telemetry {'air_humidity': [{" in out
    assert json.loads((tmp_path / "device" / "pins.json").read_text()) == {"26": 1}
    assert (tmp_path / "tbsim" / "tbsim.db").exists()
    # every line of the README's sample is one make run prints
    printed = {normal(line) for line in out.splitlines()}
    sample = readme_sample()
    assert len(sample) >= 20
    assert [x for x in sample if normal(x) not in printed] == [], out
    assert p.stderr == ""


def test_make_run_sleep_the_board_takes_an_rpc_sent_while_it_slept(tmp_path):
    # make run SLEEP=1: the device deep-sleeps between wakes 10 s apart; the operator sends
    # its RPC once the board has ended its subscriptions, and the next wake runs and answers it
    p = run(tmp_path, "--sleep", "--seconds", "16")
    out = p.stdout
    assert p.returncode == 0 and p.stderr == "", out + p.stderr
    lines = out.splitlines()
    sent = lines.index("operator: the board sleeps; rpc setGpio sent, waiting for its next wake")
    got = lines.index("operator: rpc setGpio -> {'pin': 26, 'value': 1}")
    # in between, the board slept and woke again
    assert "I app: firmware coapboard 0.1.0 on unix-sim" in lines[sent:got], out
    assert re.search(r"^I sleep: awake \d+ ms \(CoAP \d+ ms\), sleeping \d+ ms$", out, re.M), out
    assert "simdevice: deep sleep for " in out
    assert "telemetry interval now" not in out  # the awake board's operator did not run
    assert "run: stored telemetry {" in out and "'wake_reason': [{" in out


def test_ports_in_use_are_named(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        p = subprocess.run(
            [sys.executable, "-m", "tools.run", "--coap-port", str(port), "--http-port", "0"]
            + ["--data", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert p.returncode == 1 and p.stderr == "", p.stderr
    assert p.stdout.startswith("run: cannot start tbsim on udp/%d and tcp/0: " % port), p.stdout
    assert p.stdout.rstrip().endswith("make run COAP_PORT=5685 HTTP_PORT=8081)")
