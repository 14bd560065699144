"""Put MicroPython on a blank ESP32: erase the flash, then write a merged firmware image (the .bin
from micropython.org/download) at the offset its chip boots from.

Before touching the board it checks the image: an ESP image for a Wi-Fi chip, with a partition
table at flash 0x8000 that has the OTA layout coapboard's updates need (ota_0, ota_1 and
otadata). An app-only image (.app-bin), a factory-only layout, a file that is no firmware or a
serial port that is not there are refused with what to do instead.

Usage: python -m tools.flash --port /dev/ttyUSB0 FIRMWARE.bin [--baud 460800] [--dry-run]
"""

import argparse
import hashlib
import shlex
import struct
import subprocess
import sys

from tools.link import PortError, check_port

# esp_chip_id_t in the image header -> (esptool --chip, flash offset of the merged image).
# Only chips with Wi-Fi: the firmware needs it.
CHIPS = {
    0x0000: ("esp32", 0x1000),
    0x0002: ("esp32s2", 0x1000),
    0x0005: ("esp32c3", 0x0),
    0x0009: ("esp32s3", 0x0),
    0x000C: ("esp32c2", 0x0),
    0x000D: ("esp32c6", 0x0),
    0x0017: ("esp32c5", 0x2000),
}
IMAGE_MAGIC = 0xE9
TABLE_AT = 0x8000  # flash address of the partition table (ESP-IDF's default)
TABLE_MAX = 0xC00
ENTRY = struct.Struct("<2sBBII16sI")  # magic, type, subtype, offset, size, label, flags
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
# what the OTA updates need: (type, subtype) -> the name ESP-IDF gives it
OTA_NEEDS = {(0x00, 0x10): "ota_0", (0x00, 0x11): "ota_1", (0x01, 0x00): "otadata"}
DOWNLOAD = "https://micropython.org/download/ESP32_GENERIC/ (the OTA variant)"


class Refused(Exception):
    pass


def check_image(data, name="image"):
    """-> (chip, offset, partitions) of a merged firmware image: the chip it is for, where in
    flash it goes, and its partitions [(label, type, subtype, offset, size)]. Raises Refused
    saying why not."""
    base = _bootloader_at(data)
    if base is None:
        first = "empty" if not data else "first byte 0x%02x" % data[0]
        raise Refused(
            "%s is not an ESP32 firmware image (%s, expected 0x%02X): download the .bin "
            "from %s" % (name, first, IMAGE_MAGIC, DOWNLOAD)
        )
    chip_id = struct.unpack_from("<H", data, base + 12)[0]
    if chip_id not in CHIPS:
        raise Refused(
            "%s is for chip id %d, which is not an ESP32 with Wi-Fi that coapboard supports"
            % (name, chip_id)
        )
    chip, boot_at = CHIPS[chip_id]
    if base not in (0, boot_at):
        raise Refused(
            "%s has its %s bootloader at 0x%x, expected 0x%x" % (name, chip, base, boot_at)
        )
    offset = boot_at - base  # 0 for an image merged from flash address 0
    table = data[TABLE_AT - offset : TABLE_AT - offset + TABLE_MAX]
    parts = _partitions(table)
    if parts is None:
        raise Refused(
            "%s has no partition table at 0x%x: it is an app-only image (.app-bin, what OTA "
            "sends) or was built for another offset; flash the full .bin from %s"
            % (name, TABLE_AT, DOWNLOAD)
        )
    have = {(t, st) for _, t, st, _, _ in parts}
    missing = [label for key, label in OTA_NEEDS.items() if key not in have]
    if missing:
        layout = ", ".join(p[0] for p in parts)
        raise Refused(
            "%s has no OTA partition layout (missing %s; it has %s): over-the-air updates "
            "need ota_0, ota_1 and otadata; download the OTA variant from %s"
            % (name, ", ".join(missing), layout, DOWNLOAD)
        )
    return chip, offset, parts


def _bootloader_at(data):
    # where the bootloader starts in the file: 0 (MicroPython's images, merged from the
    # bootloader's address), or after 0xFF padding when merged from flash address 0
    for base in (0, 0x1000, 0x2000):
        if len(data) >= base + 24 and data[base] == IMAGE_MAGIC:
            return base if data[:base] == b"\xff" * base else None
        if data[base : base + 1] != b"\xff":
            return None
    return None


def _partitions(table):
    # the entries of an ESP-IDF partition table, or None if there is none; a table whose
    # MD5 entry does not match its entries is refused as corrupt
    parts = []
    for i in range(0, len(table) - ENTRY.size + 1, ENTRY.size):
        entry = table[i : i + ENTRY.size]
        magic = entry[:2]
        if magic == ENTRY_MAGIC:
            _, t, st, off, size, label, _ = ENTRY.unpack(entry)
            label = label.split(b"\0")[0].decode("ascii", "replace")
            parts.append((label, t, st, off, size))
        elif magic == MD5_MAGIC and parts:
            if hashlib.md5(table[:i]).digest() != entry[16:]:
                raise Refused("the partition table's MD5 does not match: the image is corrupt")
        else:
            break  # 0xFF: the end of the table
    return parts or None


def commands(port, firmware, chip, offset, baud):
    esptool = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port]
    return [
        esptool + ["erase-flash"],
        esptool + ["--baud", str(baud), "write-flash", "0x%x" % offset, firmware],
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("firmware", nargs="?", default="", help="merged MicroPython image (.bin)")
    ap.add_argument("--port", default="", help="the board's serial port, e.g. /dev/ttyUSB0")
    ap.add_argument(
        "--baud", type=int, default=460800, help="speed of the write (default %(default)s)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="check, print the commands, flash nothing"
    )
    a = ap.parse_args(argv)
    try:
        if not a.firmware:
            raise Refused(
                "no firmware: give the image, e.g. FIRMWARE=ESP32_GENERIC-OTA-<date>-<version>.bin"
            )
        try:
            with open(a.firmware, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Refused("cannot read firmware %s: %s" % (a.firmware, e.strerror)) from None
        chip, offset, parts = check_image(data, a.firmware)
        check_port(a.port)
    except (Refused, PortError) as e:
        print("flash: %s" % e, file=sys.stderr)
        return 2
    print(
        "flash: %s image for %s at 0x%x; partitions %s"
        % (a.firmware, chip, offset, ", ".join(p[0] for p in parts))
    )
    for cmd in commands(a.port, a.firmware, chip, offset, a.baud):
        print(shlex.join(cmd), flush=True)
        if not a.dry_run:
            status = subprocess.call(cmd)
            if status:
                print("flash: esptool failed (status %d); see its message above" % status)
                return status
    if not a.dry_run:
        print("flash: done; next: make deploy PORT=%s" % a.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
