# `make run`'s script end to end: tbsim and the firmware on the unix port (simulated board)
# exchange telemetry, a shared attribute and RPCs, and the server stores what the device sent.
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_firmware_and_server_talk(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "tools.run", "--seconds", "8", "--coap-port", "0"]
        + ["--http-port", "0", "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    assert re.fullmatch(r"tbsim page: http://127\.0\.0\.1:\d+/", out.splitlines()[0]), out
    assert "I app: telemetry interval now 3 s" in out
    assert "operator: rpc setGpio -> {'pin': 26, 'value': 1}" in out
    assert "operator: rpc getGpioStatus -> {'35': False, '26': True}" in out
    assert "run: stored telemetry {'air_humidity': [{" in out
    assert json.loads((tmp_path / "device" / "pins.json").read_text()) == {"26": 1}
    assert (tmp_path / "tbsim" / "tbsim.db").exists()
