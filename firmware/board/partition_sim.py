# partition_sim: the ESP32's OTA partitions for the unix port, one file each in a root folder,
# behind the esp32.Partition interface (readblocks/writeblocks with offset, ioctl, set_boot,
# get_next_update, mark_app_valid_cancel_rollback, find).
# Flash semantics: 4096-byte erase blocks; a write ANDs bits into what is there (NOR flash), so a
# write without an erase corrupts data; each such write is counted in `unerased_writes`.
# otadata is ESP-IDF's: two sectors, each a 32-byte esp_ota_select_entry_t
# (seq, label, state, crc); the record with the highest valid seq picks the slot (seq-1) % 2.
# bootloader() is the one with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: an app still pending
# verification at the next boot is aborted and the previous slot boots again.
# The ESP32's Partition is C in the firmware image and costs the heap nothing; the ESP32 twin
# (tools/twin.py) has this module frozen in, as top-level partition_sim, for the same reason.
# Frozen, its names are in the twin's ROM: it uses none the firmware has (tests/twin/
# test_board.py checks), or the firmware would find those there where a board interns them.
import os
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython (the tests)

    def const(value):
        return value


SECTOR = 4096  # the erase block
SIZE = 0x180000  # ota_0 and ota_1: 1.5 MB each
_E9 = const(0xE9)  # first byte of an ESP32 app image
FACTORY_IMAGE = b"\xe9 coapboard simulated factory image"  # what ota_0 holds after a flash

# esp_ota_img_states_t (ESP_OTA_IMG_*)
IMG_NEW = 0
IMG_PENDING_VERIFY = 1
IMG_VALID = 2
IMG_INVALID = 3
IMG_ABORTED = 4
IMG_UNDEFINED = 0xFFFFFFFF

_OTADATA = (0x0000D000, 2 * SECTOR)
_APP0 = const(0x10000)
_ERR_VALIDATE = const(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED, as MicroPython raises it
_ERR_SIZE = const(-260)  # ESP_ERR_INVALID_SIZE
_STEP = const(256)  # flash is read, checked and written in pieces of this size
_FF = b"\xff" * _STEP
_scratch = bytearray(_STEP)

unerased_writes = 0  # writes that had to clear 0 bits back to 1: a missing erase
_folder = None
_slot_size = SIZE
_running = None  # slot booted by bootloader()


def flash(folder, image=FACTORY_IMAGE, slot_size=SIZE):
    # what esptool write_flash leaves: everything erased, image in ota_0, blank otadata
    global _folder, _slot_size
    _folder, _slot_size = folder, slot_size
    for label, n in (("otadata", _OTADATA[1]), ("ota_0", slot_size), ("ota_1", slot_size)):
        with open(_path(label), "wb") as f:
            for _ in range(n // _STEP):
                f.write(_FF)
    Partition("ota_0").writeblocks(0, image)


def bootloader(folder=None, slot_size=None):
    # power on: apply the rollback rules, choose the slot, make it Partition.RUNNING
    global _folder, _slot_size, _running
    if folder is not None:
        _folder = folder
    if slot_size is not None:
        _slot_size = slot_size
    recs = _records()
    if recs[0][0] == recs[1][0] == IMG_UNDEFINED:
        # both records blank and no factory app: ESP-IDF's bootloader boots ota_0 and, with
        # rollback enabled, records it as seq 1, valid (bootloader_utility.c,
        # bootloader_utility_get_selected_boot_partition), so an update writes the other record
        _put(0, 1, IMG_VALID)
        recs[0] = (1, IMG_VALID)
    for i, r in enumerate(recs):
        if r[1] == IMG_PENDING_VERIFY:  # booted once and never confirmed: roll back
            _put(i, r[0], IMG_ABORTED)
            recs[i] = (r[0], IMG_ABORTED)
    a = _chosen(recs)
    slot = 0
    if a is not None:
        slot = (recs[a][0] - 1) % 2
        if recs[a][1] == IMG_NEW:
            _put(a, recs[a][0], IMG_PENDING_VERIFY)
    for s in (slot, 1 - slot):  # the bootloader falls back to any loadable image
        if _first_byte("ota_%d" % s) == _E9:
            _running = s
            with open(_folder + "/running", "w") as f:  # what a soft reset goes on running
                f.write("ota_%d" % s)
            return "ota_%d" % s
    raise OSError("no bootable app")


def switch_on(folder, booted=None, warm=False):
    # -> the slot running. The first use in a process (booted None) is a power-on: a flash that
    # is not there yet is made as a serial flash leaves it, then the bootloader runs. Later uses
    # pass what that returned: the same boot, for this module loaded again after it was let go.
    # warm: the process is a soft reset, which no bootloader sees (ports/esp32/main.c loops
    # back to soft_reset:): the slot the last boot chose runs on, its trial too.
    global _folder, _running
    if _running is not None:  # still loaded: booted already
        return "ota_%d" % _running
    if booted is None and warm:
        try:
            with open(folder + "/running") as f:
                booted = f.read()
        except OSError:  # never booted: this is one
            pass
    if booted is not None:
        _folder, _running = folder, int(booted[-1])
        return booted
    try:
        os.stat(folder + "/otadata.bin")
    except OSError:
        flash(folder)
    return bootloader(folder)


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=SECTOR):
        if id == Partition.RUNNING:
            if _running is None:
                raise OSError("not booted: call partition_sim.bootloader()")
            id = "ota_%d" % _running
        elif id == Partition.BOOT:
            recs = _records()
            a = _chosen(recs)
            id = "ota_%d" % ((recs[a][0] - 1) % 2 if a is not None else 0)
        if id not in ("otadata", "ota_0", "ota_1"):
            raise ValueError("partition not found")
        self.label = id
        self.block_size = block_size

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=SECTOR):
        out = []
        for name in ("otadata", "ota_0", "ota_1"):
            p = Partition(name, block_size)
            t, st = p.info()[:2]
            if t == type and subtype in (0xFF, st) and label in (None, name):
                out.append(p)
        return out

    def info(self):
        if self.label == "otadata":
            return (Partition.TYPE_DATA, 0x00, _OTADATA[0], _OTADATA[1], "otadata", False)
        s, n = int(self.label[-1]), _slot_size
        return (Partition.TYPE_APP, 0x10 + s, _APP0 + s * n, n, self.label, False)

    def readblocks(self, block, buf, start=0):
        a = self._span(block, start, len(buf))
        with open(_path(self.label), "rb") as f:
            f.seek(a)
            f.readinto(buf)

    def writeblocks(self, block, buf, start=None):
        # in pieces of _STEP bytes through one scratch buffer: the ESP32's writes (C) take
        # nothing from the heap, so neither may the simulation's beyond a few bytes
        global unerased_writes
        if start is None:  # the simple form erases first, like the real one
            for b in range((len(buf) + self.block_size - 1) // self.block_size):
                self.ioctl(6, block + b)
            start = 0
        n = len(buf)
        a = self._span(block, start, n)
        mv = memoryview(buf)
        with open(_path(self.label), "rb+") as f:
            for i in range(0, n, _STEP):
                k = min(_STEP, n - i)
                piece = mv[i : i + k]
                f.seek(a + i)
                old = _scratch if k == _STEP else bytearray(k)
                f.readinto(old)
                if old != (_FF if k == _STEP else _FF[:k]):  # NOR flash only clears bits
                    new = bytes(x & y for x, y in zip(old, piece))
                    if new != bytes(piece):
                        unerased_writes += 1
                    piece = new
                f.seek(a + i)
                f.write(piece)

    def ioctl(self, cmd, arg):
        if cmd == 4:  # block count
            return self.info()[3] // self.block_size
        if cmd == 5:  # block size
            return self.block_size
        if cmd == 6:  # erase one block
            a = self._span(arg, 0, self.block_size)
            with open(_path(self.label), "rb+") as f:
                f.seek(a)
                for _ in range(self.block_size // _STEP):
                    f.write(_FF)
            return 0
        return None

    def get_next_update(self):
        if _running is None:
            raise OSError("not booted: call partition_sim.bootloader()")
        return Partition("ota_%d" % (1 - _running))

    def set_boot(self):
        # esp_ota_set_boot_partition: verify the image, then write the next otadata record
        if _first_byte(self.label) != _E9:
            raise OSError(_ERR_VALIDATE, "ESP_ERR_OTA_VALIDATE_FAILED")
        slot = int(self.label[-1])
        recs = _records()
        a = _chosen(recs)
        if a is None:
            _put(0, slot + 1, IMG_NEW)
            return
        seq = recs[a][0] + 1
        while (seq - 1) % 2 != slot:
            seq += 1
        _put(1 - a, seq, IMG_NEW)

    @staticmethod
    def mark_app_valid_cancel_rollback():
        recs = _records()
        a = _chosen(recs)
        if a is not None and recs[a][1] == IMG_PENDING_VERIFY:
            _put(a, recs[a][0], IMG_VALID)

    def _span(self, block, start, n):
        a = block * self.block_size + start
        if a < 0 or a + n > self.info()[3]:
            raise OSError(_ERR_SIZE, "ESP_ERR_INVALID_SIZE")
        return a


def _path(label):
    return "%s/%s.bin" % (_folder, label)


def _first_byte(label):
    b = bytearray(1)
    Partition(label).readblocks(0, b)
    return b[0]


def _records():
    # [(seq, state)] of both otadata sectors; seq 0xFFFFFFFF or a bad crc reads as blank
    buf = bytearray(32)
    p = Partition("otadata")
    out = []
    for i in range(2):
        p.readblocks(i, buf)
        seq, _, state, crc = struct.unpack("<L20sLL", buf)
        if seq == IMG_UNDEFINED or crc != crc32(buf[:4], IMG_UNDEFINED):
            seq, state = IMG_UNDEFINED, IMG_UNDEFINED
        out.append((seq, state))
    return out


def _chosen(recs):
    # bootloader_common_get_active_otadata: highest seq among usable records
    best = None
    for i, (seq, state) in enumerate(recs):
        if seq != IMG_UNDEFINED and state not in (IMG_INVALID, IMG_ABORTED):
            if best is None or seq > recs[best][0]:
                best = i
    return best


def _put(sector, sequence, state):
    s = struct.pack("<L", sequence)
    rec = s + b"\xff" * 20 + struct.pack("<LL", state, crc32(s, IMG_UNDEFINED))
    Partition("otadata").writeblocks(sector, rec)
