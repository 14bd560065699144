# pytest fixtures for the tbsim tests; the helpers behind them are in tbsim_helpers.py.
from tbsim_helpers import clock, clocked_sim, device, sim, udp  # noqa: F401
