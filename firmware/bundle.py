# bundle.py: software updates (sw_*): an app bundle, the files of lib/ and firmware/, installed
# into the app slot that is not running (lib/ota/appslot.py). Imported only by updates.py.
#
# Bundle format (tools/bundle.py builds it), all integers big-endian:
#   b"CBB1"
#   per file: u16 path length, path (UTF-8, relative, "/"-separated, no "..", e.g.
#             "lib/coap/client.mpy" or "firmware/app.py"), u32 size, u32 CRC32 of the content,
#             the content
#   u16 0     the end
# The download goes to apps/bundle.bin through lib/ota's Writer (which checks the package's
# sw_checksum and reads it back); "set_boot" then unpacks it into apps/<slot>/, reads every
# file back against its CRC32 and points apps/slot.json at the slot. Until then nothing the
# running app uses is touched.
import os
import struct

from micropython import const
from ota import OTAError, appslot
from ota.writer import BLOCK

from . import crc_file

MAGIC = b"CBB1"
_BUF = const(512)


class BundleError(OTAError):
    pass


class BundleStore:
    # apps/bundle.bin behind the block interface lib/ota's Writer writes partitions through
    def __init__(self, root, slot, room):
        self.root = root
        self.slot = slot
        self.path = root + "apps/bundle.bin"
        self._room = room
        _mkdir(root + "apps")
        try:
            os.stat(self.path)
        except OSError:
            open(self.path, "wb").close()

    def ioctl(self, op, arg):
        if op == 4:
            return self._room // BLOCK
        if op == 5:
            return BLOCK
        return 0  # erase: a file needs none

    def readblocks(self, block, buf, offset=0):
        with open(self.path, "rb") as f:
            f.seek(block * BLOCK + offset)
            f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        with open(self.path, "r+b") as f:
            f.seek(block * BLOCK + offset)
            f.write(buf)

    def set_boot(self):
        # called by Writer.finish() once the checksum holds: install, then switch
        try:
            unpack(self.path, self.root + "apps/" + self.slot)
        except OSError as e:
            raise BundleError("bundle not installed: %s" % (e,)) from None
        os.remove(self.path)
        appslot.set_boot(self.root, self.slot)


def unpack(path, dest):
    # every file of the bundle into dest (emptied first), each read back against its CRC32
    _rmtree(dest)
    _mkdir(dest)
    buf = bytearray(_BUF)
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise BundleError("not an app bundle (no CBB1 magic)")
        n = 0
        while True:
            size = _read(f, 2)
            plen = struct.unpack(">H", size)[0]
            if not plen:
                break
            name = _read(f, plen).decode()
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "" in parts:
                raise BundleError("bad path in bundle: %r" % name)
            size, crc = struct.unpack(">II", _read(f, 8))
            for i in range(1, len(parts)):
                _mkdir(dest + "/" + "/".join(parts[:i]))
            target = dest + "/" + name
            with open(target, "wb") as out:
                left = size
                while left:
                    k = f.readinto(memoryview(buf)[: min(left, _BUF)])
                    if not k:
                        raise BundleError("bundle ends inside %s" % name)
                    out.write(memoryview(buf)[:k])
                    left -= k
            if crc_file(target, buf) != crc:
                raise BundleError("%s does not read back as written" % name)
            n += 1
        if not n:
            raise BundleError("empty bundle")


def _read(f, n):
    b = f.read(n)
    if len(b) != n:
        raise BundleError("bundle truncated")
    return b


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)
