# bench/energy.py, the battery-life model: its arithmetic behaves (longer intervals last longer,
# the sleep-only limit is capacity over sleep current, a fast rejoin beats a full one) and its
# CLI prints the table and a JSON that parses. No timing.
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("energy", ROOT / "bench" / "energy.py")
energy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(energy)


def test_a_longer_interval_lasts_longer():
    days = [energy.battery_days(s, 200, 6) for s in (60, 600, 3600, 86400)]
    assert days == sorted(days) and len(set(days)) == 4, days


def test_more_awake_time_or_datagrams_last_less():
    assert energy.battery_days(600, 500, 6) < energy.battery_days(600, 200, 6)
    assert energy.battery_days(600, 200, 60) < energy.battery_days(600, 200, 6)


def test_the_sleep_only_limit_is_the_capacity_over_the_sleep_current():
    # with reports ever rarer and no self-discharge only deep sleep is left, as the cells see it
    days = energy.battery_days(10**12, 0, 0, self_discharge=0.0)
    sleep_ma = energy._battery_mc(energy.SLEEP_MA, 1.0)  # mC a second at the cells = mA
    assert days == pytest.approx(energy.usable_mah() / sleep_ma / 24, rel=1e-6)


def test_self_discharge_shortens_the_life():
    assert energy.battery_days(3600, 200, 6, self_discharge=0.0) > energy.battery_days(
        3600, 200, 6
    )


def test_a_fast_rejoin_beats_a_full_join():
    for interval in energy.INTERVALS_S:
        fast = energy.battery_days(interval, 200, 6, rejoin="fast")
        assert fast > energy.battery_days(interval, 200, 6, rejoin="full")
    fast = energy.wake_charge(600, 200, 6, rejoin="fast")
    full = energy.wake_charge(600, 200, 6, rejoin="full")
    assert fast["wifi"] < full["wifi"] and fast["boot"] == full["boot"]


def test_a_dev_board_lasts_far_less_than_a_bare_module():
    assert (
        energy.battery_days(600, 200, 6, board="devboard") < energy.battery_days(600, 200, 6) / 5
    )


def test_the_per_wake_split_adds_up_to_the_days():
    parts = energy.wake_charge(600, 200, 6)
    assert set(parts) == set(energy.PHASES) and all(v > 0 for v in parts.values())
    draw = sum(parts.values()) / 3600 * 86400 / 600  # mAh a day
    leak = energy.CELL_MAH * energy.SELF_DISCHARGE_PER_YEAR / 365
    assert energy.battery_days(600, 200, 6) == pytest.approx(energy.usable_mah() / (draw + leak))


def test_the_allowed_coap_time_sits_on_the_target():
    # half-hourly reports leave room: the answer lasts the target, a bit more does not
    ms = energy.allowed_coap_ms(6, interval_s=1800)
    assert ms is not None and ms > 0
    assert energy.battery_days(1800, ms, 6) >= energy.TARGET_DAYS
    assert energy.battery_days(1800, ms + 5, 6) < energy.TARGET_DAYS
    assert energy.allowed_coap_ms(6, interval_s=60) is None  # a minute never lasts 2 years


def test_an_interval_shorter_than_a_wake_is_refused():
    with pytest.raises(ValueError):
        energy.battery_days(1, 200, 6)
    with pytest.raises(ValueError):
        energy.battery_days(600, 200, 6, rejoin="slow")


def cli(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "energy.py"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_cli_prints_the_table_and_the_target():
    p = cli("--awake-ms", "180", "--datagrams", "6")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "| interval | days | years |" in out and "Wi-Fi join | CoAP | sleep |" in out
    for row in ("| 1 min |", "| 10 min |", "| 60 min |"):
        assert row in out, out
    assert "Target >= 2 years at 10 min reports:" in out


def test_the_cli_json_parses_and_agrees_with_the_function():
    p = cli("--awake-ms", "180", "--datagrams", "6", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert [row["interval_s"] for row in r["rows"]] == [60, 600, 3600]
    ten = r["rows"][1]
    assert ten["days"] == pytest.approx(energy.battery_days(600, 180, 6), abs=0.05)
    assert set(ten["wake_uah"]) == set(energy.PHASES)
    assert r["target"]["met"] == (ten["days"] >= 730)


def test_the_cli_names_what_it_lacks():
    p = cli("--datagrams", "6")
    assert p.returncode == 2 and "--awake-ms" in p.stderr
