# writer: stream a firmware image into an app partition, verify it, make it the boot slot.
#
#   part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
#   w = Writer(part, fw_size, fw_checksum, fw_checksum_algorithm)  # or offset=n to resume
#   for chunk in chunks: w.write(chunk)     # persist w.flashed as it grows, for resume
#   w.finish()                              # checks size, checksum, read-back; then set_boot
#
# Memory: one hash object, whatever the image size. Data goes to flash as it comes (each erase
# block is erased as the image enters it), so nothing waits in RAM. A resumed download may
# write again over bytes a power cut left half written: the same bytes of the same image, which
# NOR flash takes (programming only clears bits); the read-back in finish() checks it all.
# Any refusal is an OTAError whose text says why; the boot slot only changes in finish().
from . import MAGIC, ChecksumMismatch, ImageRejected, OTAError, checksum

BLOCK = 4096  # the ESP32 flash erase unit
_PIECE = 512  # read-back and resume read flash in pieces of this size


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
        self._pos = self._hash_flash(self._hash, offset, True)  # bytes received and written

    @property
    def flashed(self):
        # bytes in flash: a power cut loses only what is above this
        return self._pos

    def _hash_flash(self, h, n, check=False):
        # hash the first n bytes of the partition -> n
        buf = bytearray(_PIECE)
        mv = memoryview(buf)
        for at in range(0, n, _PIECE):
            piece = mv[: min(_PIECE, n - at)]
            self._part.readblocks(at // BLOCK, piece, at % BLOCK)
            if check and at == 0:
                self._check_magic(piece[0])
            h.update(piece)
        return n

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
            b, at = divmod(self._pos, BLOCK)
            if at == 0:
                self._part.ioctl(6, b)  # erase: a flash write can only clear bits
            k = min(BLOCK - at, n - i)
            self._part.writeblocks(b, mv[i : i + k] if k < n else data, at)
            self._pos += k
            i += k

    def finish(self):
        # verify everything, then switch the boot slot; raises (and leaves the boot slot alone)
        # if anything does not check
        if self._pos != self.size:
            raise OTAError("image incomplete: %d of %d bytes" % (self._pos, self.size))
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
        self._hash_flash(h, self.size)
        return checksum.hexdigest(h)
