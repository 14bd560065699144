# tbsim: a local ThingsBoard-compatible CoAP server (see README.md).
from .core import RpcFailed, RpcTimeout
from .server import TbSim

__all__ = ["TbSim", "RpcTimeout", "RpcFailed"]
