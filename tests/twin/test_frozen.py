# The firmware frozen into a MicroPython image, as makers who build their own ESP32 image have it:
# the frozen twin (tools/twin.py --frozen, from firmware/manifest.py) holds lib/ and firmware/,
# and tools/simdevice.py --twin K --frozen boots it with nothing but boot.py and main.py as
# files, against tbsim in this process.
import json
import os
import subprocess

import pytest

from tests.e2e.conftest import (
    TOKEN,
    Firmware,
    client_attrs,
    make_config,
    rows,
    start_sim,
    until,
    wait_rows,
)
from tests.twin.scenarios import HEAP_K
from tools import deploy, twin


@pytest.fixture(scope="module")
def frozen_twin():
    return twin.build(frozen=True)


@pytest.fixture
def sim(tmp_path):
    s = start_sim(tmp_path / "tbsim")
    yield s
    s.stop()


def test_the_image_holds_every_module_deploy_ships(frozen_twin, tmp_path):
    # a package missing from the manifest would be missing on the board, not just here
    p = subprocess.run(
        [str(frozen_twin), "-c", "help('modules')"],
        env=dict(os.environ, MICROPYPATH=".frozen"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    frozen = set(p.stdout.split())
    # deploy's repo paths as import paths: lib/ is on the board's sys.path
    shipped = {rel[len("lib/") if rel.startswith("lib/") else 0 : -3] for rel in deploy.sources()}
    assert shipped - frozen == set()
    assert {"asyncio/core", "ssl"} <= frozen  # the port's own, which the manifest includes


def test_frozen_firmware_reports_and_answers_rpc_in_an_esp32_heap(frozen_twin, sim, tmp_path):
    did = sim.create_device("frozen-device", token=TOKEN)["id"]
    root = tmp_path / "device"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(make_config(sim)))
    fw = Firmware(root, "--twin", str(HEAP_K), "--frozen")
    try:
        fw.wait_line("I app: reporting to 127.0.0.1:%d" % sim.coap_port)
        wait_rows(sim, did, 3)
        assert sim.rpc(did, "setGpio", {"pin": 26, "value": 1}) == {"pin": 26, "value": 1}
        assert fw.pins()["26"] == 1
        until(lambda: client_attrs(sim, did).get("gpio_pump") == 1, what="gpio_pump=1")
        values = [v for _, v in rows(sim, did)]
        assert values == list(range(len(values)))  # every message once, none lost
        bad = fw.grep(lambda line: "MemoryError" in line or "Traceback" in line)
        assert fw.running() and not bad, fw.output()
    finally:
        fw.stop()
