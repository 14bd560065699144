# tools/hwtest.py's host side against the MicroPython unix port on a pty (a board that comes back
# after a reset, as an ESP32 does): every check passes on the firmware as it is, and a board
# that cannot take the test config fails at deploy with the rest skipped.
from toolsupport import UnixBoard

from tools import hwtest


def test_every_check_passes_on_a_board_that_does_its_job(tmp_path):
    board = UnixBoard(tmp_path / "board", restarts=True)
    lines = []
    try:
        results = hwtest.run(board.port, host="127.0.0.1", coap_port=0, resume=True,
                             timeout=30, log=lines.append)  # fmt: skip
    finally:
        board.stop()
    table = hwtest.table(results)
    assert [(name, ok) for name, ok, _ in results] == [(c, True) for c in hwtest.CHECKS], (
        table + "\n" + "\n".join(lines[-60:])
    )
    assert table.splitlines()[-1] == "6 of 6 checks passed"
    detail = dict((name, d) for name, _, d in results)
    assert detail["reset"] == "back after a reset (reset cause hard_reset)"
    assert "rolled back" in detail["rollback"] and "this app cannot start" in detail["rollback"]
    assert any("failed on trial, back to the previous one" in x for x in lines)


def test_a_test_config_the_board_refuses_fails_deploy_and_skips_the_rest(tmp_path, capsys):
    board = UnixBoard(tmp_path / "board")
    try:
        # 34 is input-only on an ESP32: the test pin must be an output
        status = hwtest.main(["--port", board.port, "--host", "127.0.0.1", "--coap-port", "0",
                              "--resume", "--pin", "34"])  # fmt: skip
    finally:
        board.stop()
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[1].split()[:2] == ["deploy", "FAIL"] and "34 is input-only" in out[1], out
    assert [x.split()[:2] for x in out[2:7]] == [[c, "-"] for c in hwtest.CHECKS[1:]]
    assert out[-1] == "0 of 6 checks passed"
