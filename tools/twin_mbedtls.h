// mbedTLS configuration of the ESP32 twin (tools/twin.py): the unix port's own, except that
// mbedTLS allocates from the C heap. On an ESP32 it allocates from ESP-IDF's heap, outside
// MicroPython's GC heap (the budget of 104 KB with a DTLS session open already leaves room for
// it); the unix port would put it on the GC heap and count it twice.
#include "mbedtls/mbedtls_config_port.h"
#undef MBEDTLS_PLATFORM_MEMORY
#undef MBEDTLS_PLATFORM_STD_CALLOC
#undef MBEDTLS_PLATFORM_STD_FREE
