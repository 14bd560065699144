# Heap gates: the firmware on the ESP32 twin, .mpy as deployed, must do each job in the heap a
# board gives it (scenarios.HEAP_K; scenarios.HEAP_COAPS_K with a DTLS session open). A gate
# passes when the job is done and checked (tbsim holds the telemetry, RPC replies are right,
# the update reaches UPDATED) and the device printed no MemoryError or traceback; it fails
# when the firmware stops fitting. The scenarios are tests/twin/scenarios.py, which
# bench/twin_heap.py runs to find the smallest heap each one fits; each fits its gate with 8K
# or more to spare (docs/benchmarks.md), so none passes or fails by the heap's luck.
import pytest

from tests.twin import scenarios
from tests.twin.scenarios import CYCLES, HEAP_COAPS_K, HEAP_K, IMAGE, RPCS, WAKES, Rig


@pytest.fixture(scope="module", autouse=True)
def built():
    scenarios.prepare()


@pytest.fixture
def rig(tmp_path, request):
    r = Rig(tmp_path, getattr(request, "param", "json"))
    yield r
    r.close()


def test_first_boot_provisions_and_reports(rig):
    scenarios.provisioning(rig, HEAP_K)


def test_telemetry_cycles_with_rpcs_and_attribute_changes(rig):
    scenarios.cycles(rig, HEAP_K, CYCLES, RPCS)


def test_full_firmware_download(rig):
    scenarios.firmware_update(rig, HEAP_K, IMAGE)


def test_software_bundle_update(rig):
    scenarios.bundle_update(rig, HEAP_K)


def test_coaps_telemetry_and_firmware_download(rig):
    scenarios.firmware_update(rig, HEAP_COAPS_K, IMAGE, coaps=True)


@pytest.mark.parametrize("rig", ["protobuf"], indirect=True)
def test_protobuf_telemetry_cycles_with_rpcs(rig):
    scenarios.cycles(rig, HEAP_K, CYCLES, RPCS)


def test_sleep_mode_wakes_serving_rpcs_sent_while_asleep(rig):
    scenarios.sleep_wakes(rig, HEAP_K, WAKES)
