# chips.py: what the pins of each ESP32 chip can do under official MicroPython, for
# firmware/config.py (loaded with it at boot and let go with it). Per chip: its name, the GPIOs
# machine.Pin takes in the default build (ports/esp32/machine_pin.h; the classic ESP32's 6-11
# are wired to the SPI flash, the C3's and C6's USB pins serve the REPL), the input-only pins,
# which have no pull-up either (GPIO 34-39 on the ESP32, 46 on the S2), and the ADC1 channels
# (ports/esp32/machine_adc.c; ADC2 fails while Wi-Fi is on).


def _r(a, b):
    return range(a, b + 1)


_CHIPS = {
    "esp32": ("ESP32", (_r(0, 5), _r(12, 19), _r(21, 23), _r(25, 27), _r(32, 39)), _r(34, 39)),
    "esp32s2": ("ESP32-S2", (_r(0, 21), _r(26, 26), _r(33, 46)), _r(46, 46)),
    "esp32s3": ("ESP32-S3", (_r(0, 21), _r(26, 26), _r(33, 48)), ()),
    "esp32c3": ("ESP32-C3", (_r(0, 13), _r(20, 21)), ()),
    "esp32c6": ("ESP32-C6", (_r(0, 11), _r(14, 23)), ()),
}
_ADC1 = {"esp32": (32, 39), "esp32s2": (1, 10), "esp32s3": (1, 10), "esp32c3": (0, 4)}


def problem(chip, pin, use):
    # what is wrong with pin for use ("in", "out", "bus", "adc", "button": an input that needs
    # a pull-up) on chip, or None. An unknown chip: nothing is known to be wrong.
    c = _CHIPS.get(chip)
    if c is None:
        return None
    name, gpios, input_only = c
    if not any(pin in r for r in gpios):
        if chip == "esp32" and 6 <= pin <= 11:
            return "%d is wired to the SPI flash on ESP32" % pin
        return "%d is not a GPIO on %s" % (pin, name)
    if pin in input_only and use in ("out", "bus"):
        return "%d is input-only on %s, cannot be an output" % (pin, name)
    if pin in input_only and use == "button":
        return "%d has no pull-up on %s, a button there needs one: expected another pin" % (
            pin,
            name,
        )
    lo, hi = _ADC1.get(chip, (0, 6))  # the C6's
    if use == "adc" and not lo <= pin <= hi:
        return "%d is not an ADC1 pin on %s (%d-%d); ADC2 fails while Wi-Fi is on" % (
            pin,
            name,
            lo,
            hi,
        )
    return None
