# tools/flash.py: which images it accepts, the exact esptool commands it runs, and what it
# refuses. Images are built here byte by byte (and once by esptool merge-bin) with ESP-IDF's
# layouts: image header with the chip id at byte 12, partition table at flash 0x8000.
import hashlib
import os
import struct
import subprocess
import sys

import pytest

from tools import flash

OTA = [  # partitions-4MiB-ota.csv of MicroPython's ESP32_GENERIC OTA variant
    ("nvs", 1, 0x02, 0x9000, 0x4000),
    ("otadata", 1, 0x00, 0xD000, 0x2000),
    ("phy_init", 1, 0x01, 0xF000, 0x1000),
    ("ota_0", 0, 0x10, 0x10000, 0x180000),
    ("ota_1", 0, 0x11, 0x190000, 0x180000),
    ("vfs", 1, 0x81, 0x310000, 0xF0000),
]
FACTORY = [  # the plain ESP32_GENERIC layout: one app, no OTA
    ("nvs", 1, 0x02, 0x9000, 0x6000),
    ("phy_init", 1, 0x01, 0xF000, 0x1000),
    ("factory", 0, 0x00, 0x10000, 0x1F0000),
    ("vfs", 1, 0x81, 0x200000, 0x200000),
]


def header(chip_id):
    # esp_image_header_t: magic, segments, spi mode, size/freq, entry, then the extended
    # header whose chip_id is at byte 12
    return struct.pack("<BBBBIB3sHBHHI", 0xE9, 3, 2, 0x20, 0x40080000, 0xEE, b"\0" * 3,
                       chip_id, 0, 0, 0xFFFF, 0) + b"\0" * 4  # fmt: skip


def table(parts, md5=True):
    out = b"".join(
        struct.pack("<2sBBII16sI", b"\xaa\x50", t, st, off, size, label.encode(), 0)
        for label, t, st, off, size in parts
    )
    if md5:
        out += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(out).digest()
    return out + b"\xff" * (0xC00 - len(out))


def image(chip_id=0, offset=0x1000, parts=OTA, md5=True):
    data = bytearray(b"\xff" * (0x10000 + 64 - offset))
    data[: len(header(chip_id))] = header(chip_id)
    t = table(parts, md5)
    data[0x8000 - offset : 0x8000 - offset + len(t)] = t
    data[0x10000 - offset : 0x10000 - offset + 24] = header(chip_id)  # the app
    return bytes(data)


@pytest.fixture
def port():
    # a real serial device node (a pty), as a plugged-in board gives
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.flash", *args], capture_output=True, text=True, timeout=60
    )


def test_dry_run_prints_the_exact_esptool_commands_for_an_esp32_ota_image(tmp_path, port):
    fw = tmp_path / "ESP32_GENERIC-OTA-20250911-v1.26.1.bin"
    fw.write_bytes(image())
    p = run("--port", port, str(fw), "--dry-run")
    assert p.returncode == 0, p.stderr
    esptool = "%s -m esptool --chip esp32 --port %s" % (sys.executable, port)
    assert p.stdout.splitlines()[1:] == [
        esptool + " erase-flash",
        "%s --baud 460800 write-flash 0x1000 %s" % (esptool, fw),
    ]
    assert "partitions nvs, otadata, phy_init, ota_0, ota_1, vfs" in p.stdout


@pytest.mark.parametrize(
    "chip_id, chip, offset",
    [(0x0009, "esp32s3", 0x0), (0x0005, "esp32c3", 0x0), (0x0002, "esp32s2", 0x1000),
     (0x0017, "esp32c5", 0x2000)],
)  # fmt: skip
def test_offset_and_chip_come_from_the_image(chip_id, chip, offset):
    got = flash.check_image(image(chip_id, offset))
    assert got[:2] == (chip, offset)
    assert flash.commands("/dev/ttyACM0", "fw.bin", chip, offset, 921600)[1][-6:] == [
        "/dev/ttyACM0", "--baud", "921600", "write-flash", "0x%x" % offset, "fw.bin",
    ]  # fmt: skip


@pytest.mark.parametrize("target", [["--target-offset", "0x1000"], []])
def test_an_image_merged_by_esptool_is_accepted(tmp_path, target):
    # the layouts esptool itself produces: from the bootloader's address (as MicroPython's
    # images are) or from flash address 0, with 0xFF up to the bootloader
    (tmp_path / "boot.bin").write_bytes(header(0) + b"\0" * 64)
    (tmp_path / "pt.bin").write_bytes(table(OTA))
    (tmp_path / "app.bin").write_bytes(header(0) + b"\0" * 64)
    out = tmp_path / "merged.bin"
    subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "merge-bin", "-o", str(out),
         *target, "0x1000", "boot.bin", "0x8000", "pt.bin", "0x10000", "app.bin"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    chip, offset, parts = flash.check_image(out.read_bytes())
    assert (chip, offset) == ("esp32", 0x1000 if target else 0)
    assert [p[0] for p in parts] == [p[0] for p in OTA]


def test_esptool_accepts_the_command_lines(tmp_path):
    # not a dry run: esptool parses every argument and stops only at opening the port
    fw = tmp_path / "fw.bin"
    fw.write_bytes(image())
    p = run("--port", "socket://127.0.0.1:9", str(fw))
    assert p.returncode == 2
    assert "Could not open socket://127.0.0.1:9" in p.stdout + p.stderr
    assert "esptool failed (status 2)" in p.stdout


@pytest.mark.parametrize(
    "data, why",
    [
        (image(parts=FACTORY), "has no OTA partition layout (missing ota_0, ota_1, otadata; "
         "it has nvs, phy_init, factory, vfs)"),
        (header(0) + b"\0" * 0x9000, "has no partition table at 0x8000: it is an app-only "
         "image (.app-bin"),
        (b"\x7fELF" + b"\0" * 100, "is not an ESP32 firmware image (first byte 0x7f"),
        (b"", "is not an ESP32 firmware image (empty"),
        (image(chip_id=0x0010), "is for chip id 16, which is not an ESP32 with Wi-Fi"),
        (image(parts=OTA[:3]), "missing ota_0, ota_1"),
    ],
)  # fmt: skip
def test_wrong_images_are_refused_before_the_port_is_touched(tmp_path, data, why):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(data)
    p = run("--port", "/dev/no-such-port", str(fw), "--dry-run")
    assert p.returncode == 2
    assert why in p.stderr and p.stdout == ""


def test_a_corrupt_partition_table_is_refused():
    data = bytearray(image())
    data[0x7000 + 40] ^= 1  # inside the second entry; the MD5 entry no longer matches
    with pytest.raises(flash.Refused, match="MD5 does not match"):
        flash.check_image(bytes(data))


def test_missing_port_file_or_arguments_are_refused(tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(image())
    p = run("--port", "/dev/ttyUSB7", str(fw), "--dry-run")
    assert p.returncode == 2
    assert "serial port /dev/ttyUSB7 not found: plug the board in" in p.stderr
    p = run("--port", "", str(fw))
    assert "no serial port: give the board's port, e.g. PORT=/dev/ttyUSB0" in p.stderr
    p = run("--port", "/dev/ttyUSB0", str(tmp_path / "nope.bin"))
    assert "cannot read firmware %s: No such file or directory" % (tmp_path / "nope.bin") in (
        p.stderr
    )
    p = run("--port", "/dev/ttyUSB0")
    assert "no firmware: give the image" in p.stderr
    p = run("--port", str(fw), str(fw))
    assert "%s is not a serial port" % fw in p.stderr
