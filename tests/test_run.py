# `make run`'s script end to end: tbsim and the demo device on the unix port exchange
# telemetry, shared attributes and an RPC, and the server stores what the device sent.
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_device_and_server_talk(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "tools.run", "--seconds", "3", "--coap-port", "0"]
        + ["--http-port", "0", "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    assert 'device: shared attributes {"greeting":"hello from tbsim"}' in out
    assert "device: telemetry {" in out and "-> ok" in out
    assert "operator: rpc echo -> {'result': {'pin': 2, 'value': 1}}" in out
    assert "run: stored telemetry {'humidity': [{" in out
    assert (tmp_path / "tbsim.db").exists()
