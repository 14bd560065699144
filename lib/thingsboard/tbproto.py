# tbproto.py: ThingsBoard's fixed protobuf messages (attribute notifications and reads, client
# RPC, claim, provisioning) for lib/protobuf. Generated from tools/protoschema/thingsboard.proto
# by `python -m tools.protoschema --thingsboard` (then ruff format); do not edit.
SCHEMA = {
    "messages": {
        "tb.KeyValueProto": [
            [1, "key", "string", 0],
            [2, "type", "tb.KeyValueType", 0],
            [3, "bool_v", "bool", 0],
            [4, "long_v", "int64", 0],
            [5, "double_v", "double", 0],
            [6, "string_v", "string", 0],
            [7, "json_v", "string", 0],
        ],
        "tb.TsKvProto": [[1, "ts", "int64", 0], [2, "kv", "tb.KeyValueProto", 4]],
        "tb.AttributeUpdateNotificationMsg": [
            [1, "sharedUpdated", "tb.TsKvProto", 1],
            [2, "sharedDeleted", "string", 1],
        ],
        "tb.GetAttributeResponseMsg": [
            [1, "requestId", "int32", 0],
            [2, "clientAttributeList", "tb.TsKvProto", 1],
            [3, "sharedAttributeList", "tb.TsKvProto", 1],
            [4, "isMultipleAttributesRequest", "bool", 0],
            [5, "error", "string", 0],
            [6, "sharedStateMsg", "bool", 0],
        ],
        "tb.RpcRequest": [[1, "method", "string", 0], [2, "params", "string", 0]],
        "tb.ToServerRpcResponseMsg": [
            [1, "requestId", "int32", 0],
            [2, "payload", "string", 0],
            [3, "error", "string", 0],
        ],
        "tb.ClaimDevice": [[1, "secretKey", "string", 0], [2, "durationMs", "int64", 0]],
        "tb.ProvisionDeviceCredentialsMsg": [
            [1, "provisionDeviceKey", "string", 0],
            [2, "provisionDeviceSecret", "string", 0],
        ],
        "tb.ValidateDeviceTokenRequestMsg": [[1, "token", "string", 0]],
        "tb.ValidateDeviceX509CertRequestMsg": [[1, "hash", "string", 0]],
        "tb.ValidateBasicMqttCredRequestMsg": [
            [1, "clientId", "string", 0],
            [2, "userName", "string", 0],
            [3, "password", "string", 0],
        ],
        "tb.CredentialsDataProto": [
            [1, "validateDeviceTokenRequestMsg", "tb.ValidateDeviceTokenRequestMsg", 4],
            [2, "validateDeviceX509CertRequestMsg", "tb.ValidateDeviceX509CertRequestMsg", 4],
            [3, "validateBasicMqttCredRequestMsg", "tb.ValidateBasicMqttCredRequestMsg", 4],
        ],
        "tb.ProvisionDeviceRequestMsg": [
            [1, "deviceName", "string", 0],
            [2, "credentialsType", "tb.CredentialsType", 0],
            [3, "provisionDeviceCredentialsMsg", "tb.ProvisionDeviceCredentialsMsg", 4],
            [4, "credentialsDataProto", "tb.CredentialsDataProto", 4],
        ],
        "tb.ProvisionDeviceResponseMsg": [
            [1, "status", "tb.ResponseStatus", 0],
            [2, "credentialsType", "tb.CredentialsType", 0],
            [3, "credentialsValue", "string", 0],
        ],
    },
    "enums": {
        "tb.KeyValueType": {
            "BOOLEAN_V": 0,
            "LONG_V": 1,
            "DOUBLE_V": 2,
            "STRING_V": 3,
            "JSON_V": 4,
        },
        "tb.CredentialsType": {
            "ACCESS_TOKEN": 0,
            "X509_CERTIFICATE": 1,
            "MQTT_BASIC": 2,
            "LWM2M_CREDENTIALS": 3,
        },
        "tb.ResponseStatus": {"UNKNOWN": 0, "SUCCESS": 1, "NOT_FOUND": 2, "FAILURE": 3},
    },
}
