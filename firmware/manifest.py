# manifest.py: freeze the firmware into a custom MicroPython image, so its bytecode runs from
# flash and leaves the heap to data. In a MicroPython checkout:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/coapboard/firmware/manifest.py
# boot.py, main.py and config.json stay files on the board's filesystem.
include("$(PORT_DIR)/boards/manifest.py")
package("coap", base_path="../lib")
package("thingsboard", base_path="../lib")
package("protobuf", base_path="../lib")
package("ota", base_path="../lib")
package("firmware", base_path="..", opt=3)
