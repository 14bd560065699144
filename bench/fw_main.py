# fw_main.py: main.py of a benchmarked simulated board on the ESP32 twin (python -m
# tools.simdevice ROOT --twin K --main bench/fw_main.py; the twin has fw_device frozen in): the
# firmware as bench/fw_device.py runs it, with ROOT/fw_device.json's settings. As small as the
# main.py it stands in for: this source is compiled on every boot.
from fw_device import board_main

board_main()
