# writer: stream a firmware image into an app partition, verify it, make it the boot slot.
#
#   part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
#   w = Writer(part, fw_size, fw_checksum, fw_checksum_algorithm)  # or offset=n to resume
#   for chunk in chunks: w.write(chunk)     # persist w.flashed as it grows, for resume
#   w.finish()                              # checks size, checksum, read-back; then set_boot
#
# Memory: one 4096-byte block buffer and one hash object, whatever the image size.
# Any refusal is an OTAError whose text says why; the boot slot only changes in finish().
from . import MAGIC, ChecksumMismatch, ImageRejected, OTAError, checksum

BLOCK = 4096  # the ESP32 flash erase unit


class Writer:
    def __init__(self, part, size, expected, algorithm="SHA256", offset=0, magic=MAGIC):
        # part: the partition to write (an esp32.Partition, or anything with its block
        # interface); expected: the checksum as ThingsBoard sends it. offset > 0 resumes: bytes
        # below it are already in `part` (they must be below a `flashed` value this image
        # reached before). magic None: not an app image (an app bundle checks its own).
        self._hash = checksum.new(algorithm)  # first: an unusable algorithm refuses at once
        self._algorithm = algorithm
        self._part = part
        self._expected = str(expected).strip().lower()
        self._magic = magic
        if part.ioctl(5, 0) != BLOCK:
            raise OTAError("partition block size is not %d" % BLOCK)
        room = part.ioctl(4, 0) * BLOCK
        if size <= 0 or size > room:
            raise ImageRejected(
                "image of %d bytes does not fit the %d-byte partition" % (size, room)
            )
        if offset < 0 or offset > size:
            raise OTAError("resume offset %d outside the image" % offset)
        self.size = size
        self._buf = bytearray(BLOCK)
        self._mv = memoryview(self._buf)
        self._pos = 0  # bytes received (and hashed)
        self.flashed = 0  # bytes safely in flash: a power cut loses only what is above this
        if offset:
            self._rehash(offset)

    def _rehash(self, offset):
        # resume: hash what is already in flash and reload the block the image continues in
        full, rest = divmod(offset, BLOCK)
        for b in range(full):
            self._part.readblocks(b, self._buf)
            if b == 0:
                self._check_magic(self._buf[0])
            self._hash.update(self._buf)
        if rest:
            tail = self._mv[:rest]
            self._part.readblocks(full, tail)
            if full == 0:
                self._check_magic(tail[0])
            self._hash.update(tail)
        self._pos = offset
        self.flashed = full * BLOCK

    def _check_magic(self, first):
        if first == self._magic or self._magic is None:
            return
        if first == 0xFF:
            # esptool merge-bin pads with 0xFF up to the bootloader at 0x1000
            raise ImageRejected(
                "image starts with 0xFF, not the app-image magic 0xE9: this looks like a merged"
                " flash image (bootloader at 0x1000); OTA takes the app image alone"
            )
        raise ImageRejected(
            "image starts with 0x%02X, not the ESP32 app-image magic 0xE9 (a merged flash image"
            " has it only at 0x1000; OTA takes the app image alone)" % first
        )

    @property
    def received(self):
        return self._pos

    def write(self, data):
        n = len(data)
        if not n:
            return
        if self._pos + n > self.size:
            raise OTAError("more data than the announced %d bytes" % self.size)
        if self._pos == 0:
            self._check_magic(data[0])  # before the first block reaches flash
        self._hash.update(data)
        mv = memoryview(data)
        i = 0
        while i < n:
            fill = self._pos % BLOCK
            k = min(BLOCK - fill, n - i)
            self._mv[fill : fill + k] = mv[i : i + k]
            self._pos += k
            i += k
            if fill + k == BLOCK:
                self._flush(BLOCK)

    def _flush(self, n):
        b = self.flashed // BLOCK
        self._part.ioctl(6, b)  # erase: a flash write can only clear bits
        self._part.writeblocks(b, self._mv[:n], 0)
        self.flashed += n

    def finish(self):
        # verify everything, then switch the boot slot; raises (and leaves the boot slot alone)
        # if anything does not check
        if self._pos != self.size:
            raise OTAError("image incomplete: %d of %d bytes" % (self._pos, self.size))
        if self.flashed < self.size:
            self._flush(self.size - self.flashed)
        got = checksum.hexdigest(self._hash)
        if got != self._expected:
            raise ChecksumMismatch(
                "%s mismatch: got %s, expected %s" % (self._algorithm, got, self._expected)
            )
        got = self._readback()
        if got != self._expected:
            raise ChecksumMismatch(
                "read-back %s mismatch: flash holds %s, expected %s"
                % (self._algorithm, got, self._expected)
            )
        try:
            self._part.set_boot()
        except OSError as e:
            raise ImageRejected("the bootloader refused the image: %s" % (e,)) from None

    def _readback(self):
        # hash the partition as flashed: catches write errors the incoming hash cannot see
        h = checksum.new(self._algorithm)
        full, rest = divmod(self.size, BLOCK)
        for b in range(full):
            self._part.readblocks(b, self._buf)
            h.update(self._buf)
        if rest:
            self._part.readblocks(full, self._mv[:rest])
            h.update(self._mv[:rest])
        return checksum.hexdigest(h)
