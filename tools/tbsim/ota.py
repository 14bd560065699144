# ota.py: OTA packages (transport reference §6): checksums as ThingsBoard formats them, the
# fw_*/sw_* shared attributes an assignment sets or deletes, and the chunk a device asks for.
import binascii
import hashlib

ALGORITHMS = ("MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32")  # no MURMUR3_128
TYPES = {"FIRMWARE": "fw", "SOFTWARE": "sw"}
# every key unassigning deletes, listed whether it existed or not (§6.2)
KEYS = ("title", "version", "ts", "state", "size", "checksum", "checksum_algorithm", "url", "tag")


def _murmur3_32(data, seed=0):
    c1, c2, h = 0xCC9E2D51, 0x1B873593, seed
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) * c2 & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[n:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) * c2 & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    for shift, mul in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h ^= h >> shift
        h = (h * mul) & 0xFFFFFFFF
    return h ^ (h >> 16)


def checksum(data, algorithm):
    # Lowercase hex as Guava's HashCode.toString(): CRC32 and MURMUR3_32 little-endian (§6.3).
    algorithm = algorithm.upper()
    if algorithm == "CRC32":
        return (binascii.crc32(data) & 0xFFFFFFFF).to_bytes(4, "little").hex()
    if algorithm == "MURMUR3_32":
        return _murmur3_32(data).to_bytes(4, "little").hex()
    if algorithm in ("MD5", "SHA256", "SHA384", "SHA512"):
        return hashlib.new(algorithm.lower(), data).hexdigest()
    raise ValueError("unsupported checksum algorithm %r" % algorithm)


def assigned_attributes(pkg):
    # -> (attributes to set, keys to delete) when pkg is assigned (§6.2)
    p = TYPES[pkg["type"]]
    values = {p + "_title": pkg["title"], p + "_version": pkg["version"]}
    deleted = []
    if pkg.get("tag"):
        values[p + "_tag"] = pkg["tag"]
    else:
        deleted.append(p + "_tag")
    if pkg.get("url"):
        values[p + "_url"] = pkg["url"]
    else:
        deleted.append(p + "_url")
    if pkg.get("size") is not None and pkg.get("checksum"):
        values[p + "_size"] = pkg["size"]
        values[p + "_checksum_algorithm"] = pkg["checksum_algorithm"]
        values[p + "_checksum"] = pkg["checksum"]
    return values, deleted


def unassigned_keys(ota_type):
    p = TYPES[ota_type]
    return [p + "_" + k for k in KEYS]


def chunk(data, size, index):
    # bytes [index*size, index*size+size); b"" past the end, which gets no reply at all
    start = index * size
    return data[start : start + size]
