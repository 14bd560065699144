# ota: firmware updates into the ESP32's next app partition.
#   ota.writer    stream an image into the partition, verify it, switch the boot slot; resume
#   ota.checksum  the ThingsBoard checksum algorithms the board can compute
#   ota.rollback  once per boot: confirm the running app, read the otadata state
# str() of any OTAError is a reason fit for ThingsBoard's fw_error.


MAGIC = 0xE9  # the first byte of an ESP32 app image


class OTAError(Exception):
    pass


class UnsupportedAlgorithm(OTAError):
    pass


class ImageRejected(OTAError):
    # the image cannot be an app for this partition; nothing was written
    pass


class ChecksumMismatch(OTAError):
    pass
