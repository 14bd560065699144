# thingsboard: ThingsBoard's CoAP device API on lib/coap, a module for each part, imported from
# it (from thingsboard.device import Device). The package itself holds no code, so that naming
# it costs a board's heap nothing.
#   thingsboard.device        Device: telemetry, attributes, RPC both ways, claim, OTA chunks
#   thingsboard.provision     provision, ProvisionError
#   thingsboard.errors        BadRequest, Unauthorized, NotFound, ServerError (first failure)
#   thingsboard.backoff       retry delays; within()
#   thingsboard.jsonpayload   the JSON payloads; protopayload, protoprovision, tbproto: PROTOBUF
