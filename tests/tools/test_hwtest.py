# tools/hwtest.py's host side against the MicroPython unix port on a pty (a board that comes back
# after a reset, as an ESP32 does): every check passes on the firmware as it is, the rollback
# of a firmware image that cannot confirm itself too, and a board that cannot take the test
# config fails at deploy with the rest skipped.
from toolsupport import UnixBoard

from tests.device.otaimage import image
from tools import hwtest


def test_every_check_passes_on_a_board_that_does_its_job(tmp_path):
    board = UnixBoard(tmp_path / "board", restarts=True)
    firmware = tmp_path / "image.bin"
    firmware.write_bytes(image(20000))  # an image the simulated board boots (an app's magic)
    lines = []
    try:
        results = hwtest.run(board.port, host="127.0.0.1", coap_port=0, resume=True,
                             timeout=30, log=lines.append, firmware=firmware)  # fmt: skip
    finally:
        board.stop()
    table = hwtest.table(results)
    assert [(name, ok) for name, ok, _ in results] == [(c, True) for c in hwtest.CHECKS], (
        table + "\n" + "\n".join(lines[-60:])
    )
    rows = table.splitlines()
    assert rows[-1] == "7 of 7 checks passed"
    detail = dict((name, d) for name, _, d in results)
    assert detail["reset"] == "back after a reset (reset cause hard_reset)"
    sw = detail["sw-rollback"]
    assert "rolled back" in sw and "this app cannot start" in sw
    assert any("failed on trial, back to the previous one" in x for x in lines)
    assert rows[-2].split()[:2] == ["fw-rollback", "pass"]
    assert detail["fw-rollback"] == (
        "FAILED: rolled back to 0.1.0: self-test failed: no telemetry acknowledged within 30 s"
    )
    # the board reset itself out of the image on trial, and its bootloader went back
    assert any("self-test failed: resetting to roll back" in x for x in lines)
    assert (board.root / "running").read_text() == "ota_0"


def test_a_test_config_the_board_refuses_fails_deploy_and_skips_the_rest(tmp_path, capsys):
    board = UnixBoard(tmp_path / "board")
    try:
        # 34 is input-only on an ESP32: the test pin must be an output
        status = hwtest.main(["--port", board.port, "--host", "127.0.0.1", "--coap-port", "0",
                              "--resume", "--pin", "34", "--firmware", "image.bin"])  # fmt: skip
    finally:
        board.stop()
    out = capsys.readouterr().out.splitlines()
    assert status == 1
    assert out[1].split()[:2] == ["deploy", "FAIL"] and "34 is input-only" in out[1], out
    assert [x.split()[:2] for x in out[2:8]] == [[c, "-"] for c in hwtest.CHECKS[1:]]
    assert out[-1] == "0 of 7 checks passed"
