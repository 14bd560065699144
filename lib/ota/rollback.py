# rollback: once per boot. A new image boots "pending verify"; unless it calls cancel() after
# its self-test, the bootloader goes back to the previous image at the next reset.
# state() reads the otadata partition (ESP-IDF's two esp_ota_select_entry_t records) for
# diagnostics, through the documented esp32.Partition API only. Partition is passed in (the
# board's `partition`: esp32.Partition, or the unix simulation's), so no hardware import here.
import struct
from binascii import crc32

from micropython import const

STATES = {0: "new", 1: "pending_verify", 2: "valid", 3: "invalid", 4: "aborted"}
_BLANK = const(0xFFFFFFFF)


def cancel(Partition):
    # mark the running app valid: no rollback at the next reset
    Partition.mark_app_valid_cancel_rollback()


def state(Partition):
    # {"running", "boot": labels, "seq", "state": the active otadata record} (seq None and
    # state "undefined" when otadata is blank, as after a serial flash)
    otadata = Partition.find(Partition.TYPE_DATA, 0x00)[0]
    buf = bytearray(32)
    best = None
    for i in range(2):
        otadata.readblocks(i, buf)
        seq, _, st, crc = struct.unpack("<I20sII", buf)
        usable = seq != _BLANK and crc == crc32(buf[:4], _BLANK) and st not in (3, 4)
        if usable and (best is None or seq > best[0]):
            best = (seq, st)
    return {
        "running": Partition(Partition.RUNNING).info()[4],
        "boot": Partition(Partition.BOOT).info()[4],
        "seq": best[0] if best else None,
        "state": STATES.get(best[1], "undefined") if best else "undefined",
    }


def pending(Partition):
    # True while the running app still has to pass its self-test
    s = state(Partition)
    return s["state"] == "pending_verify" and s["running"] == s["boot"]
