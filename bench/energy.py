# energy.py: battery life of a deep-sleeping ESP32 reporting over CoAP (issue 15), from what the
# sleep-mode bench measures of a wake's CoAP part (awake ms, datagrams) and the assumptions below.
# Each wake: boot from deep sleep into MicroPython and import the firmware (radio off), join
# Wi-Fi, exchange CoAP, deep-sleep for the rest of the interval. Currents are the 3.3 V rail's;
# the regulator turns them into the battery's. Stdlib only; battery_days() is the API, and the
# CLI prints a table (or --json) for 1-, 10- and 60-minute reports.
# Usage: .venv/bin/python bench/energy.py --awake-ms 180 --datagrams 6 [--rejoin full]
#        [--board devboard] [--boot-ms MS] [--json]
import argparse
import json
import sys

# --- ESP32 (classic ESP32-WROOM-32, MicroPython's ESP32_GENERIC), currents at 3.3 V -----------

# Deep sleep with the RTC timer and RTC memory on: 10 uA. ESP32-WROOM-32 datasheet, section 3.4
# "RTC and Low-Power Management", table "Power Consumption by Power Modes"
# (https://www.espressif.com/sites/default/files/documentation/esp32-wroom-32_datasheet_en.pdf).
# Its 5 uA "RTC timer only" row is Hibernation, which powers RTC memory down; a rejoin that
# remembers channel and BSSID keeps them there, so 10 uA.
SLEEP_MA = 0.010

# Boot phase, CPU on and radio off: 40 mA, an estimate. ESP32 Series Datasheet, "Power
# Consumption by Power Modes", Modem-sleep (CPU on, radio off) at 160 MHz: 27-44 mA
# (https://www.espressif.com/sites/default/files/documentation/esp32_datasheet_en.pdf);
# MicroPython runs the ESP32 at 160 MHz unless told otherwise (machine.freq()). Near the top of
# the range: both cores are up and the SPI flash is read throughout. ESP-IDF's own measurement
# of an ESP32 at 160 MHz, radio off, CPU idle: 27-28 mA (the minimum column of the Modem-sleep
# table in its "Introduction to Low Power Mode in Wi-Fi Scenarios", api-guides/low-power-mode,
# https://docs.espressif.com/projects/esp-idf/en/latest/esp32/api-guides/low-power-mode/).
BOOT_MA = 40.0

# Wi-Fi radio, ESP32 Series Datasheet, "RF Current Consumption in Active Mode" (3.3 V, 25 C):
# TX 802.11b 1 Mbps at 19.5 dBm 240 mA (802.11g 54 Mbps 190 mA, 802.11n MCS7 180 mA);
# RX 802.11b/g/n 95-100 mA, measured with the CPU idle.
TX_MA = 240.0
RX_MA = 100.0

# Radio on, modem sleep off (the firmware keeps the radio listening through a wake's short
# exchange): RX plus about 20 mA for the CPU running Python part of the time, an estimate from
# the gap between the datasheet's Modem-sleep rows at 160 MHz and at 2 MHz (2-4 mA). The same
# average serves association (mostly listening for the AP's replies, short TX bursts). With
# modem sleep on, ESP-IDF measures 31 mA connected and idle (DTIM1, same page as BOOT_MA), but
# each reply would then wait up to a beacon interval.
RADIO_ON_MA = RX_MA + 20.0

# Each datagram (sent, or received and ACKed at the 802.11 layer) costs about 1 ms at TX current
# above listening: an estimate. A 100-200 byte datagram with 802.11 preamble and ACK takes
# 0.1 ms of air at 54 Mbps and about 2 ms at 1 Mbps. Small next to the awake time's listening.
DATAGRAM_TX_MS = 1.0

# --- Times ------------------------------------------------------------------------------------

# Wake to MicroPython running user code: 690 ms, measured (an ESP32-DevKitC V4 with WROOM-32,
# otii Arc, `machine.deepsleep(1000)` as the whole program; 190 ms for the same with Arduino):
# https://forum.micropython.org/viewtopic.php?f=2&t=9555. It covers the ROM, the 2nd-stage
# bootloader (which checks the app image) and MicroPython's start.
BOOT_BASE_MS = 690.0

# Importing the firmware: 300 ms, an estimate (no public figure found). MicroPython loads .mpy
# into RAM: about 64 KB of code stays once boot is over, about 20 KB more is boot's own and is
# let go (docs/benchmarks.md, the twin); each file is read from the flash file system, its qstrs
# interned and its code objects built. A frozen image keeps bytecode in flash and skips most of
# it. The board run of the sleep-mode bench replaces this figure (--boot-ms).
IMPORT_MS = 300.0
BOOT_MS = BOOT_BASE_MS + IMPORT_MS

# Fast rejoin, remembered channel and BSSID, static IP: 350 ms. Measured about 200 ms on an
# ESP32 with the connection's PMK kept in flash (https://github.com/espressif/arduino-esp32/
# issues/11139, "<200 ms with static ip + bssid + channel"; issue 1675: 0.21 s). MicroPython
# keeps Wi-Fi settings in RAM (ports/esp32/network_wlan.c, esp_wifi_set_storage(
# WIFI_STORAGE_RAM)), so each wake derives the WPA2 PSK again: 138 ms on an ESP32
# (https://github.com/espressif/esp-idf/issues/15072). 200 + 138, rounded up.
FAST_JOIN_MS = 350.0

# Full join: a scan, then DHCP. ESP-FAQ (https://docs.espressif.com/projects/esp-faq/en/latest/
# software-framework/wifi.html): an active scan spends 120 ms a channel, 2,040 ms for all; the
# default fast scan stops at the AP's channel, 720 ms for channel 6. DHCP: 1.5-2 s against
# <200 ms with a static IP in arduino-esp32 issue 11139 above, so 1.5 s.
SCAN_MS = 720.0
DHCP_MS = 1500.0
FULL_JOIN_MS = FAST_JOIN_MS + SCAN_MS + DHCP_MS

# --- Battery and regulator --------------------------------------------------------------------

# 2 x AA alkaline in series (Energizer E91): 2,850 mAh typical at 25 mA to 0.8 V a cell, 21 C
# (https://data.energizer.com/pdfs/e91.pdf). In series the mAh stay, the volts add.
CELL_MAH = 2850.0
CELLS = 2
# Usable share: 80 %, an estimate. The wake's ~200 mA pulses at the cells raise the drop across
# their internal resistance as it grows with discharge (Energizer's alkaline handbook, "Internal
# Resistance"), so the converter's cut-off comes before 0.8 V a cell; cold takes more.
USABLE = 0.80
# Mean cell voltage over that discharge: 1.25 V, an estimate from the E91 sheet's low-drain
# curves (1.5 V falling to 0.8 V, most of the capacity between 1.4 and 1.1 V).
CELL_V = 1.25
# Self-discharge: 2 % of capacity a year at room temperature, an estimate from Energizer's
# "holds power up to 10 years in storage" (shelf life is counted to 80-85 % left); more if warm.
SELF_DISCHARGE_PER_YEAR = 0.02

# The maker's battery design: a bare module on a buck-boost converter, as TI's TPS63802 (input
# 1.3-5.5 V, so the cells run down to below 0.8 V each; 11 uA quiescent current:
# https://www.ti.com/lit/ds/symlink/tps63802.pdf). 90 % efficiency, an estimate from its
# efficiency curves at 2-3 V in, 3.3 V out, tens to hundreds of mA. An LDO cannot make 3.3 V
# from 2 x AA (3.2 V fresh, 2.4 V half used).
V_OUT = 3.3
EFFICIENCY = 0.90
CONVERTER_IQ_MA = 0.011

# A dev board (ESP32-DevKitC and its clones) adds its AMS1117 LDO (5 mA quiescent typical in its
# datasheet, 3.2 mA measured: https://en.kohacraft.com/archives/esp32-devkitcs-deepsleep-is-
# consuming-quite-a-bit-of-current-so-i-investigated-the-cause.html), the USB-UART bridge and
# the power LED: 2.8 mA in deep sleep measured on a DevKitC V4 (the forum thread above), 3.8 mA
# at https://lucidar.me/en/esp32/power-consumption-of-esp32/. Modelled as 3 mA more at 3.3 V.
DEVBOARD_EXTRA_MA = 3.0

TARGET_INTERVAL_S = 600
TARGET_DAYS = 2 * 365
INTERVALS_S = (60, 600, 3600)
PHASES = ("boot", "wifi", "coap", "sleep")


def _battery_mc(load_ma, seconds):
    # charge the cells give (mC) for a 3.3 V load over some seconds, converter included
    return (load_ma * V_OUT / (CELL_V * CELLS * EFFICIENCY) + CONVERTER_IQ_MA) * seconds


def wake_charge(
    interval_s, coap_awake_ms, datagrams, rejoin="fast", board="module", boot_ms=BOOT_MS
):
    """Charge from the cells per wake, mC by phase: boot, wifi (join), coap, sleep."""
    if rejoin not in ("fast", "full"):
        raise ValueError("rejoin: 'fast' or 'full', not %r" % (rejoin,))
    if board not in ("module", "devboard"):
        raise ValueError("board: 'module' or 'devboard', not %r" % (board,))
    join_ms = FAST_JOIN_MS if rejoin == "fast" else FULL_JOIN_MS
    awake_s = (boot_ms + join_ms + coap_awake_ms) / 1000.0
    if interval_s <= awake_s:
        raise ValueError("interval %ss is shorter than a wake (%.2f s)" % (interval_s, awake_s))
    extra = DEVBOARD_EXTRA_MA if board == "devboard" else 0.0  # drawn awake or asleep
    tx_s = datagrams * DATAGRAM_TX_MS / 1000.0
    return {
        "boot": _battery_mc(BOOT_MA + extra, boot_ms / 1000.0),
        "wifi": _battery_mc(RADIO_ON_MA + extra, join_ms / 1000.0),
        "coap": _battery_mc(RADIO_ON_MA + extra, coap_awake_ms / 1000.0)
        + _battery_mc(TX_MA - RX_MA, tx_s),
        "sleep": _battery_mc(SLEEP_MA + extra, interval_s - awake_s),
    }


def usable_mah():
    return CELL_MAH * USABLE


def battery_days(
    interval_s,
    coap_awake_ms,
    datagrams,
    rejoin="fast",
    board="module",
    boot_ms=BOOT_MS,
    self_discharge=SELF_DISCHARGE_PER_YEAR,
):
    """Days 2 x AA last reporting every interval_s with the given CoAP part of a wake."""
    parts = wake_charge(interval_s, coap_awake_ms, datagrams, rejoin, board, boot_ms)
    per_wake = sum(parts.values())
    draw_mah_day = per_wake / 3600.0 * 86400.0 / interval_s
    leak_mah_day = CELL_MAH * self_discharge / 365.0
    return usable_mah() / (draw_mah_day + leak_mah_day)


def wake_budget_uah(interval_s=TARGET_INTERVAL_S, target_days=TARGET_DAYS):
    """What one wake may take from the cells, sleep included, to last target_days."""
    leak = CELL_MAH * SELF_DISCHARGE_PER_YEAR / 365.0 * target_days
    wakes = target_days * 86400.0 / interval_s
    return (usable_mah() - leak) / wakes * 1000.0


def _largest(ok, lo, hi):
    # the largest x in [lo, hi] with ok(x), ok true at lo and false past the edge; None if not
    if not ok(lo):
        return None
    if ok(hi):
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def allowed_coap_ms(
    datagrams,
    interval_s=TARGET_INTERVAL_S,
    target_days=TARGET_DAYS,
    rejoin="fast",
    board="module",
    boot_ms=BOOT_MS,
):
    """The longest CoAP awake time that still lasts target_days; None if even 0 ms does not."""
    most = interval_s * 1000.0 - boot_ms - FULL_JOIN_MS - 1.0
    return _largest(
        lambda ms: battery_days(interval_s, ms, datagrams, rejoin, board, boot_ms) >= target_days,
        0.0,
        most,
    )


def allowed_boot_ms(
    coap_awake_ms,
    datagrams,
    interval_s=TARGET_INTERVAL_S,
    target_days=TARGET_DAYS,
    rejoin="fast",
    board="module",
):
    """The longest boot (wake to firmware imported) that still lasts target_days, or None."""
    return _largest(
        lambda ms: (
            battery_days(interval_s, coap_awake_ms, datagrams, rejoin, board, ms) >= target_days
        ),
        0.0,
        BOOT_MS,
    )


def shortest_interval_s(
    coap_awake_ms,
    datagrams,
    target_days=TARGET_DAYS,
    rejoin="fast",
    board="module",
    boot_ms=BOOT_MS,
):
    """The shortest report interval that lasts target_days, or None if none does."""
    day = 86400.0
    if battery_days(day, coap_awake_ms, datagrams, rejoin, board, boot_ms) < target_days:
        return None  # not even a report a day
    # bisect on how far below a day the interval may go
    x = _largest(
        lambda back: (
            battery_days(day - back, coap_awake_ms, datagrams, rejoin, board, boot_ms)
            >= target_days
        ),
        0.0,
        day - 60.0,
    )
    return day - x


def report(coap_awake_ms, datagrams, rejoin="fast", board="module", boot_ms=BOOT_MS):
    """Everything the CLI prints, as plain data (the --json output)."""
    rows = []
    for interval in INTERVALS_S:
        parts = wake_charge(interval, coap_awake_ms, datagrams, rejoin, board, boot_ms)
        days = battery_days(interval, coap_awake_ms, datagrams, rejoin, board, boot_ms)
        rows.append(
            {
                "interval_s": interval,
                "days": round(days, 1),
                "years": round(days / 365.0, 2),
                "wake_uah": {k: round(v / 3.6, 2) for k, v in parts.items()},
            }
        )
    target = battery_days(TARGET_INTERVAL_S, coap_awake_ms, datagrams, rejoin, board, boot_ms)
    allowed = allowed_coap_ms(datagrams, rejoin=rejoin, board=board, boot_ms=boot_ms)
    other = "full" if rejoin == "fast" else "fast"
    return {
        "coap_awake_ms": coap_awake_ms,
        "datagrams": datagrams,
        "rejoin": rejoin,
        "board": board,
        "boot_ms": boot_ms,
        "join_ms": FAST_JOIN_MS if rejoin == "fast" else FULL_JOIN_MS,
        "rows": rows,
        "target": {
            "interval_s": TARGET_INTERVAL_S,
            "days": TARGET_DAYS,
            "model_days": round(target, 1),
            "met": target >= TARGET_DAYS,
            "wake_budget_uah": round(wake_budget_uah(), 2),
            "allowed_coap_ms": None if allowed is None else round(allowed),
            "allowed_boot_ms": _round(
                allowed_boot_ms(coap_awake_ms, datagrams, rejoin=rejoin, board=board)
            ),
            "shortest_interval_s": _round(
                shortest_interval_s(
                    coap_awake_ms, datagrams, rejoin=rejoin, board=board, boot_ms=boot_ms
                )
            ),
        },
        "other_rejoin": {
            "rejoin": other,
            "days_at_target_interval": round(
                battery_days(TARGET_INTERVAL_S, coap_awake_ms, datagrams, other, board, boot_ms),
                1,
            ),
        },
        "sleep_only_days": round(
            battery_days(10**12, 0, 0, rejoin, board, boot_ms, self_discharge=0.0), 0
        ),
    }


def _round(x):
    return None if x is None else round(x)


def _minutes(seconds):
    return "%d min" % (seconds // 60)


def table(r):
    """The report as text: a markdown table and the target's verdict."""
    head = (
        "2 x AA alkaline (E91, %d mAh usable), %s, boot %d ms, %s rejoin %d ms;"
        " CoAP %g ms, %d datagrams a wake"
        % (
            usable_mah(),
            "bare module on a buck-boost" if r["board"] == "module" else "dev board",
            r["boot_ms"],
            r["rejoin"],
            r["join_ms"],
            r["coap_awake_ms"],
            r["datagrams"],
        )
    )
    lines = [
        head,
        "",
        "| interval | days | years | per wake, uAh from the cells: boot | Wi-Fi join | CoAP"
        " | sleep |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        w = row["wake_uah"]
        total = sum(w.values())
        cells = ["%.1f (%d %%)" % (w[p], round(100 * w[p] / total)) for p in PHASES]
        lines.append(
            "| %s | %.0f | %.2f | %s |"
            % (_minutes(row["interval_s"]), row["days"], row["years"], " | ".join(cells))
        )
    t = r["target"]
    verdict = "met" if t["met"] else "NOT met"
    lines += [
        "",
        "Target >= 2 years at %s reports: %s (%.0f days, %.2f years)."
        % (_minutes(t["interval_s"]), verdict, t["model_days"], t["model_days"] / 365.0),
    ]
    lines.append(
        "Its budget: %.1f uAh from the cells a wake, sleep included." % t["wake_budget_uah"]
    )
    if t["allowed_coap_ms"] is None:
        lines.append("No CoAP time fits: boot, Wi-Fi join and sleep alone take more than that.")
    else:
        lines.append("The target allows up to %d ms of CoAP a wake." % t["allowed_coap_ms"])
    if not t["met"]:
        boot, every = t["allowed_boot_ms"], t["shortest_interval_s"]
        lines.append(
            ("Even a 0 ms boot would not meet it" if boot is None else
             "It needs a boot of at most %d ms" % boot)
            + ("." if every is None else "; reports every %.1f min or more would." % (every / 60))
        )  # fmt: skip
    o = r["other_rejoin"]
    lines.append(
        "With a %s rejoin instead: %.0f days at %s. Deep sleep alone, no self-discharge:"
        " %.0f days."
        % (o["rejoin"], o["days_at_target_interval"], _minutes(t["interval_s"]),
           r["sleep_only_days"])
    )  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="bench/energy.py", description="Battery life of a deep-sleeping ESP32 on 2 x AA."
    )
    p.add_argument("--awake-ms", type=float, required=True, help="CoAP part of a wake, ms")
    p.add_argument("--datagrams", type=int, required=True, help="datagrams a wake, both ways")
    p.add_argument("--rejoin", choices=("fast", "full"), default="fast")
    p.add_argument("--board", choices=("module", "devboard"), default="module")
    p.add_argument("--boot-ms", type=float, default=BOOT_MS, help="wake to firmware imported")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    r = report(a.awake_ms, a.datagrams, a.rejoin, a.board, a.boot_ms)
    print(json.dumps(r, indent=1) if a.json else table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
