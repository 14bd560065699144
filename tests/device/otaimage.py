# otaimage.py: the deterministic test image of the OTA tests, shared by the unix-port cases
# (tests/device/mp_ota.py) and the CPython ones (tests/test_ota.py).


def image(n):
    # pseudo-random bytes with the ESP32 app-image magic first
    b = bytearray(n)
    x = 1
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = x >> 16 & 0xFF
    b[0] = 0xE9
    return bytes(b)
