# writer: stream a firmware image into an app partition, verify it, make it the boot slot.
#
#   part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
#   w = Writer(part, fw_size, fw_checksum, fw_checksum_algorithm)  # or offset=n to resume
#   for chunk in chunks: w.write(chunk)     # or w.write(chunk, at): persist w.flashed as it
#                                           # grows, for resume
#   w.finish()                              # checks size, checksum, read-back; then set_boot
#
# Pieces may come in any order (a download's window writes each chunk as it arrives, so none
# waits in RAM): each erase block is erased once, in order, before the first byte enters it.
# `flashed` is what lies in flash with no gap before it, what a resume starts from. A resumed
# download may write again over bytes a power cut left half written: the same bytes of the
# same image, which NOR flash takes (programming only clears bits). finish() hashes the image
# as it is in flash: whatever came over the network or went wrong writing it, that is what
# boots. Any refusal is an OTAError whose text says why; the boot slot only changes in finish().
from micropython import const

from . import MAGIC, ChecksumMismatch, ImageRejected, OTAError, checksum

BLOCK = 4096  # the ESP32 flash erase unit
_PIECE = const(512)  # the read-back reads flash in pieces of this size


class Writer:
    def __init__(self, part, size, expected, algorithm="SHA256", offset=0, magic=MAGIC):
        # part: the partition to write (an esp32.Partition, or anything with its block
        # interface); expected: the checksum as ThingsBoard sends it. offset > 0 resumes: bytes
        # below it are already in `part` (they must be below a `flashed` value this image
        # reached before). magic None: not an app image (an app bundle checks its own).
        checksum.new(algorithm)  # first: an unusable algorithm refuses at once
        self._part = part
        self._expected = (algorithm, str(expected).strip().lower())
        self.magic = magic
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
        # the image's bytes in flash with no gap before them: a power cut loses only what is
        # above this
        self.flashed = offset
        self._ahead = {}  # start -> end of pieces written past a gap
        self._erased = (offset + BLOCK - 1) // BLOCK * BLOCK  # blocks below are erased
        if offset:
            first = bytearray(1)
            part.readblocks(0, first)
            self._check_magic(first[0])

    def _check_magic(self, first):
        if first == self.magic or self.magic is None:
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
        return self.flashed

    def write(self, data, at=None):
        # data at byte `at` of the image, by default right after what is in flash
        if at is None:
            at = self.flashed
        n = len(data)
        end = at + n
        if not n:
            return
        if end > self.size:
            raise OTAError("more data than the announced %d bytes" % self.size)
        if at == 0:
            self._check_magic(data[0])  # before the first block reaches flash
        while self._erased < end:  # a flash write can only clear bits
            self._part.ioctl(6, self._erased // BLOCK)
            self._erased += BLOCK
        mv = memoryview(data)
        i = 0
        while i < n:
            b, o = divmod(at + i, BLOCK)
            k = min(BLOCK - o, n - i)
            self._part.writeblocks(b, mv[i : i + k] if k < n else data, o)
            i += k
        if at > self.flashed:
            self._ahead[at] = end
            return
        self.flashed = max(self.flashed, end)
        while self.flashed in self._ahead:
            self.flashed = self._ahead.pop(self.flashed)

    def finish(self):
        # verify everything, then switch the boot slot; raises (and leaves the boot slot alone)
        # if anything does not check
        if self.flashed != self.size:
            raise OTAError("image incomplete: %d of %d bytes" % (self.flashed, self.size))
        # the image as it is in flash, read back in pieces, is what is checked
        algorithm, expected = self._expected
        h = checksum.new(algorithm)
        mv = memoryview(bytearray(_PIECE))
        for at in range(0, self.size, _PIECE):
            piece = mv[: min(_PIECE, self.size - at)]
            self._part.readblocks(at // BLOCK, piece, at % BLOCK)
            h.update(piece)
        got = checksum.hexdigest(h)
        if got != expected:
            raise ChecksumMismatch(
                "%s mismatch: read-back of the flash gives %s, expected %s"
                % (algorithm, got, expected)
            )
        try:
            self._part.set_boot()
        except OSError as e:
            raise ImageRejected("the bootloader refused the image: %s" % (e,)) from None
