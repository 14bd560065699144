# esp32: the board on a real ESP32, on MicroPython's machine, esp32, network, dht, onewire,
# ds18x20 and ntptime. The unix port has none of them: tests/device/mp_board.py runs it on
# fakes of those modules, and everything above the board is tested on firmware/board/sim.py.
import asyncio
import binascii
import time

import esp32
import machine
import network

from . import LED_PIN, Base

JOIN_MS = 20000  # how long one attempt to join the Wi-Fi network may take
_ATTEN = {
    0: machine.ADC.ATTN_0DB,
    2.5: machine.ADC.ATTN_2_5DB,
    6: machine.ADC.ATTN_6DB,
    11: machine.ADC.ATTN_11DB,
}
# machine has no brownout cause: the ESP32 port reports a brownout as one of these
_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard_reset",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft_reset",
}


class Board(Base):
    name = "esp32"
    root = "/"

    def __init__(self):
        super().__init__()
        self._wlan = network.WLAN(network.STA_IF)
        self._buses = {}  # 1-Wire pin -> _DS18B20: sensors on one pin share the bus
        self._blinker = None

    @property
    def chip(self):
        # os.uname().machine is "<board> with <MCU>", e.g. "Generic ESP32 module with ESP32"
        import os

        return os.uname().machine.rsplit(" with ", 1)[-1].lower()

    @property
    def partition(self):
        return esp32.Partition

    # --- pins

    def pin(self, num, direction, invert=False, initial=None, pull_up=False):
        P = machine.Pin
        if direction == "out":
            if initial is None:
                p = P(num, P.OUT)
            else:  # set the level as the pin becomes an output: no glitch on a relay
                p = P(num, P.OUT, value=1 if bool(initial) != bool(invert) else 0)
        else:
            p = P(num, P.IN, P.PULL_UP if pull_up else None)
        return machine.Signal(p, invert=True) if invert else p

    def signal_error(self, pin=LED_PIN, invert=False):
        led = self.led(pin, invert)
        self._blinker = machine.Timer(0)  # keeps blinking while the REPL is in use
        self._blinker.init(period=250, callback=lambda t: led.value(not led.value()))

    # --- sensors

    def adc(self, pin, atten_db):
        a = machine.ADC(machine.Pin(pin))
        a.atten(_ATTEN[atten_db])
        return a

    def chip_temperature(self):
        f = getattr(esp32, "mcu_temperature", None)  # S2, S3, C3, C6: calibrated, in °C
        return f() if f else None

    def raw_temperature(self):
        f = getattr(esp32, "raw_temperature", None)  # the classic ESP32: a raw register value
        return f() if f else None

    def dht(self, pin, kind):
        import dht

        return (dht.DHT11 if kind == "dht11" else dht.DHT22)(machine.Pin(pin))

    def ds18b20(self, pin):
        bus = self._buses.get(pin)
        if bus is None:
            bus = self._buses[pin] = _DS18B20(pin)
        return bus

    # --- network and time

    def isconnected(self):
        return self._wlan.isconnected()

    async def _join(self, ssid, password, ifconfig=None, ap=None):
        w = self._wlan
        w.active(True)
        if w.isconnected():
            return True
        if ifconfig:  # a static address: no DHCP round trips
            w.ifconfig(tuple(ifconfig))
        bssid = None
        if ap:  # the access point of the last join: its channel first, and that one only
            w.config(channel=ap["ch"])  # where the scan starts (network_wlan.c: cfg.sta.channel)
            bssid = binascii.unhexlify(ap["bssid"])
        try:
            w.connect(ssid, password, bssid=bssid)
        except OSError as e:  # e.g. a connect still in progress: start over next attempt
            self.log.warning("wifi:", e)
            w.disconnect()
            return False
        for _ in range(JOIN_MS // 20):  # often: a sleeping board's every ms awake counts
            await asyncio.sleep_ms(20)
            if w.isconnected():
                if ap is not None and not ap:
                    self._learn(w, ssid, ap)
                return True
        w.disconnect()
        if ap:
            ap.clear()  # the access point may have changed: any one next time
        return False

    def _learn(self, w, ssid, ap):
        # which access point was joined: the channel says, and a scan of it (once, after a
        # power on) gives its BSSID, which MicroPython does not report otherwise
        ch = w.config("channel")
        seen = [n for n in w.scan() if n[0] == ssid.encode() and n[2] == ch]
        if seen:
            best = max(seen, key=lambda n: n[3])  # the strongest: the one joined
            ap.update(ch=ch, bssid=binascii.hexlify(best[1]).decode())

    def ip(self):
        return self._wlan.ifconfig()[0]

    def mac(self):
        return ":".join("%02x" % b for b in self._wlan.config("mac"))

    def unique_id(self):
        return binascii.hexlify(machine.unique_id()).decode()

    async def sync_time(self):
        import ntptime

        try:
            ntptime.settime()  # blocks for at most its 1 s socket timeout
        except (OSError, ValueError) as e:  # no answer, or a short one (ntptime unpacks it)
            self.log.warning("ntp:", repr(e))

    def time_set(self):
        # the RTC starts at 2000-01-01 (ports/esp32/main.c) and keeps its time across resets
        # and deep sleep, not across a power cut
        return time.gmtime()[0] >= 2024

    # --- power

    def reset(self):
        machine.reset()

    def restart(self):
        machine.soft_reset()  # a SystemExit: main.py ends, the port starts over (main.c)

    def deepsleep(self, ms):
        time.sleep_ms(20)  # what was just sent leaves the Wi-Fi driver's queue
        self._wlan.active(False)  # the radio off first: it draws the most
        machine.deepsleep(ms)

    def memory(self, data=None):
        # the RTC's slow memory: kept across deep sleep and resets, lost with the power
        rtc = machine.RTC()
        if data is None:
            return rtc.memory()
        rtc.memory(data)

    def _reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")


class _DS18B20:
    wait_ms = 750  # conversion time at 12-bit resolution; the caller awaits it

    def __init__(self, pin):
        import ds18x20
        import onewire

        self._ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(pin)))
        self._roms = ()

    def convert(self):
        self._roms = self._ds.scan()  # sensors may be plugged in or out at any time
        self._ds.convert_temp()

    def read(self):
        return [(binascii.hexlify(r).decode(), self._ds.read_temp(r)) for r in self._roms]
