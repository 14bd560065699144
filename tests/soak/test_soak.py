# The short soak (make soak runs the long one): 20 one-second cycles with 10 % loss, 10 %
# duplication and 10 % reordering both ways, a network outage at cycle 8 and a tbsim restart at
# cycle 16. Nothing may be lost or stored twice, the firmware must not crash, it re-registers
# its observations after the restart and answers an RPC once the faults stop.
from tools.soak import soak


def test_short_soak_loses_nothing(tmp_path):
    r = soak(20, every=8, seed=3, workdir=tmp_path, log=lambda *a: None)
    assert r["crashed"] == []
    assert r["produced"] >= 20
    assert r["lost"] == 0 and r["stored_twice"] == 0 and r["still_spooled"] == 0
    assert r["stored"] == r["produced"]
    assert r["outages"] == 1 and r["tbsim_restarts"] == 1
    assert r["reregistrations"] >= 2  # both observations, after the restart
    assert set(r["rpc_after_faults"]) == {"pin", "value"}
    assert r["heap_start"] and r["heap_end"]
