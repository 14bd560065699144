# fw_main.py: main.py of a benchmarked simulated board (python -m tools.simdevice ROOT --main
# bench/fw_main.py --path DIR, DIR holding fw_device): the firmware as bench/fw_device.py runs
# it, with ROOT/fw_device.json's settings. As small as the main.py it stands in for: the driver
# is compiled code, this source is compiled on every boot.
from fw_device import board_main

board_main()
