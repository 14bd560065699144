# manifest.py: freeze the firmware into a custom MicroPython image, so its bytecode runs from
# flash and leaves the heap to data. In a MicroPython checkout:
#   make -C ports/esp32 BOARD=ESP32_GENERIC BOARD_VARIANT=OTA \
#        FROZEN_MANIFEST=/path/to/coapboard/firmware/manifest.py
# boot.py, main.py and config.json stay files on the board's filesystem.
# FROZEN_MANIFEST replaces the port's own manifest, whose modules (asyncio, the ESP32's _boot
# that mounts the filesystem, ...) are needed too: the ESP32's by default; the unix port has
# none at that path, so the ESP32 twin (tools/twin.py) names its standard variant's.
options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py")
include(options.port_manifest)
package("coap", base_path="../lib")
package("thingsboard", base_path="../lib")
package("protobuf", base_path="../lib")
package("ota", base_path="../lib")
package("firmware", base_path="..", opt=3)
