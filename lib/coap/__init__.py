# coap: a CoAP client for MicroPython (RFC 7252, 7641, 7959), a module for each part, imported
# from it (from coap.client import connect). The package itself holds no code, so that naming
# it costs a board's heap nothing.
#   coap.client      Client, Exchange, Observation, connect; CoapTimeout, Reset, ResponseError
#   coap.codec       the message format (View, encode, MessageError); runs under CPython too
#   coap.codes       the rest of RFC 7252's numbers, which codec hands out as its own
#   coap.message     Message, a decoded copy, for tools and tests
#   coap.uri         parse_uri, uri_options
#   coap.block       download, upload (RFC 7959 block-wise transfers)
#   coap.dtls        coaps (DTLS 1.2) under the Client; coap.dtlscontext, coap.handshake
