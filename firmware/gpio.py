# gpio.py: the GPIO allowlist from config.json and the RPC methods that drive it: setGpio and
# getGpio as in ThingsBoard's CoAP docs ({"pin": 26, "value": 1}; pin as number, numeric
# string or allowlist name) and getGpioStatus / setGpioStatus as ThingsBoard's GPIO control
# widget sends them ({"pin": 26, "enabled": true}; replies {"26": true, ...}).


class Gpio:
    def __init__(self, board, cfg, on_change=None):
        # cfg: config.json's "gpio" entries
        self.on_change = on_change  # called after an output changed
        self.pins = {}  # number -> (config entry, pin object)
        for e in cfg:
            p = board.pin(e["pin"], e["direction"], e.get("invert", False), e.get("initial"))
            self.pins[e["pin"]] = (e, p)

    def _lookup(self, params, out=False):
        if not isinstance(params, dict) or "pin" not in params:
            raise ValueError('params must be an object with "pin"')
        pin = params["pin"]
        number = None
        if isinstance(pin, int) and not isinstance(pin, bool):
            number = pin
        elif isinstance(pin, str):
            if pin.isdigit():
                number = int(pin)
            else:
                for n, (e, _) in self.pins.items():
                    if e["name"] == pin:
                        number = n
        if number not in self.pins:
            raise ValueError("pin %s is not in the GPIO allowlist" % pin)
        entry, p = self.pins[number]
        if out and entry["direction"] != "out":
            raise ValueError("pin %s is an input" % pin)
        return number, p

    def _write(self, number, pin, value):
        if value in (True, 1, "1", "true", "on"):
            pin.value(1)
        elif value in (False, 0, "0", "false", "off"):
            pin.value(0)
        else:
            raise ValueError("value must be 0 or 1, not %r" % (value,))
        if self.on_change:
            self.on_change()

    def set_gpio(self, params):
        number, p = self._lookup(params, True)
        self._write(number, p, params.get("value"))
        return {"pin": number, "value": p.value()}

    def get_gpio(self, params):
        number, p = self._lookup(params)
        return {"pin": number, "value": p.value()}

    def get_status(self, params=None):
        return {str(n): bool(p.value()) for n, (_, p) in self.pins.items()}

    def set_status(self, params):
        number, p = self._lookup(params, True)
        self._write(number, p, params.get("enabled"))
        return self.get_status()

    def states(self):
        # the pin states as client attributes: {"gpio_<name>": 0 or 1}
        return {"gpio_" + e["name"]: p.value() for e, p in self.pins.values()}
