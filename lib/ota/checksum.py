# checksum: incremental ThingsBoard checksums, formatted as the server sends them (lowercase
# hex; CRC32 as its little-endian bytes, so CRC32 0x12345678 is "78563412").
import binascii
import hashlib

from micropython import const

from . import UnsupportedAlgorithm

# what ThingsBoard offers but a stock MicroPython build has no code for
_ELSEWHERE = const(("SHA384", "SHA512", "MURMUR3_32", "MURMUR3_128"))


class _CRC32:
    def __init__(self):
        self._crc = 0

    def update(self, buf):
        self._crc = binascii.crc32(buf, self._crc)

    def digest(self):
        return self._crc.to_bytes(4, "little")


def new(algorithm):
    # a hash object with update(buf) and digest() for a ThingsBoard fw_checksum_algorithm
    a = str(algorithm).upper().replace("-", "")
    if a == "SHA256":
        return hashlib.sha256()
    if a == "MD5" and hasattr(hashlib, "md5"):
        return hashlib.md5()
    if a == "CRC32":
        return _CRC32()
    if a in _ELSEWHERE or a == "MD5":
        raise UnsupportedAlgorithm(
            "checksum algorithm %s is not available on this board; use SHA256, MD5 or CRC32" % a
        )
    raise UnsupportedAlgorithm("unknown checksum algorithm %r" % algorithm)


def hexdigest(hash):
    return binascii.hexlify(hash.digest()).decode()
