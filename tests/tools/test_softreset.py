# Soft resets on the pty board (tests/tools/ptyboard.py), as on an ESP32: boot.py runs on every
# one, main.py only after one from the friendly REPL; and what the firmware's boot.py makes of
# them: a deploy (mpremote's raw-REPL soft reset) never abandons or fails an update on trial.
import json
import shutil

import serial
from toolsupport import TOKEN, device_config

from tests.device.otaimage import image
from tests.e2e.conftest import until, write_json
from tests.e2e.test_updates import otadata, slot_state, states
from tools import deploy
from tools.link import Link

RECORD = "open('ran.txt', 'a').write(%r)\n"


def entry_files(root):
    # boot.py and main.py that say when they ran, in ran.txt
    root.mkdir()
    (root / "boot.py").write_text(RECORD % "boot ")
    (root / "main.py").write_text(RECORD % "main ")


def ran(board):
    try:
        return (board.root / "ran.txt").read_text().split()
    except FileNotFoundError:
        return []


def test_power_on_runs_boot_then_main(unix_board, tmp_path):
    entry_files(tmp_path / "board")
    board = unix_board(boot=True)
    until(lambda: ran(board) == ["boot", "main"], what="boot.py and main.py")
    assert not (board.root / "reset_cause").exists()  # the simulated board's power_on


def test_mpremote_entering_the_raw_repl_runs_boot_but_not_main(unix_board, tmp_path):
    entry_files(tmp_path / "board")
    board = unix_board(boot=True)
    until(lambda: ran(board) == ["boot", "main"], what="power on")
    link = Link(board.port)  # as a deploy reaches an ESP32: a soft reset in the raw REPL
    try:
        assert ran(board) == ["boot", "main", "boot"]
        assert (board.root / "reset_cause").read_text() == "soft_reset"
        assert link.t.eval("1 + 1") == 2  # and the raw REPL is back, ready
        link.t.serial.write(b"\x04")  # Ctrl-D in the raw REPL: one more, still no main.py
        until(lambda: len(ran(board)) == 4, what="a second soft reset")
        assert ran(board) == ["boot", "main", "boot", "boot"]
    finally:
        link.close()


def test_ctrl_d_in_the_friendly_repl_runs_boot_then_main(unix_board, tmp_path):
    entry_files(tmp_path / "board")
    board = unix_board(boot=True)
    until(lambda: ran(board) == ["boot", "main"], what="power on")
    link = Link(board.port, resume=True)
    try:
        link.start()  # Ctrl-B to the friendly REPL, then Ctrl-D
        until(lambda: len(ran(board)) == 4, what="boot.py and main.py again")
        assert ran(board) == ["boot", "main", "boot", "main"]
        assert (board.root / "reset_cause").read_text() == "soft_reset"
    finally:
        link.close()


def test_a_deploy_neither_abandons_nor_fails_updates_on_trial(
    unix_board, sim, tmp_path, mpy_dir, deployed
):
    # a firmware image and an app bundle, both installed and reset into (on trial): then the
    # maker deploys a new config by cable and starts the firmware
    did = sim.create_device("on-trial", token=TOKEN)["id"]
    root = tmp_path / "board"
    shutil.copytree(deployed, root)  # the firmware, then both updates as they leave the flash
    fw = ["coapboard", "0.2.0", 4096, "ab" * 32, "SHA256"]
    sw = ["coapboard-app", "0.2.0", 9000, "cd" * 32, "SHA256"]
    install_image(root, image(4096))
    (root / "apps" / "a").mkdir(parents=True)  # the bundle's files: the deployed ones do here
    write_json(root / "apps" / "slot.json", {"run": "a", "prev": "", "state": "new"})
    write_json(root / "ota.json", {
        "fw": {"slots": {"ota_1": fw[:2]}, "trying": {"slot": "ota_1", "pkg": fw}},
        "sw": {"slots": {"a": sw[:2]}, "trying": {"slot": "a", "pkg": sw}},
    })  # fmt: skip
    # a config the firmware refuses: it stops, and the maker deploys a good one
    cfg = device_config(sim.coap_port, ota={"self_test_s": 120}, telemetry={"interval_s": 0})
    write_json(root / "config.json", cfg)
    # the reset into both updates: the bootloader and boot.py start their trials
    board = unix_board(boot=True)
    at_the_repl(board)  # the firmware stopped: no Ctrl-C lands in it (ptyboard.py says why)
    assert slot_state(root)["state"] == "trying"
    assert otadata(root) == [(1, 2), (2, 1)]  # ota_1 (seq 2) booted, pending verification
    link = Link(board.port)
    try:
        cfg["telemetry"]["interval_s"] = 2
        files = deploy.collect(link.info(), json.dumps(cfg).encode(), out=mpy_dir)
        files = {p: d for p, d in files.items() if p == "config.json"}  # the firmware is there
        copied, _ = deploy.deploy(link, files, log=lambda *a: None)
        assert copied == ["config.json"]
        link.start()  # the pty board resets as an ESP32 does: Ctrl-D, boot.py, main.py
    finally:
        link.close()
    kinds = ("fw", "sw")
    until(lambda: all(states(sim, did, k) for k in kinds), 60, "the trials' outcome")
    assert [states(sim, did, k) for k in kinds] == [["UPDATED"], ["UPDATED"]]
    assert slot_state(root) == {
        "run": "a", "prev": "", "state": "valid"}  # fmt: skip
    assert otadata(root) == [(1, 2), (2, 2)]  # ota_1 (seq 2) valid


def at_the_repl(board):
    # main.py has ended at the friendly REPL's prompt. The simulated bootloader runs when the
    # flash is first used (an ESP32's ran before boot.py): use it now, in this boot. pyserial
    # empties the input as it opens the port, so a prompt printed before then is gone: Enter
    # asks for one; the command's prompt is the one after its echo
    command = b"import firmware.board; firmware.board.get().partition"
    with serial.Serial(board.port, 115200, timeout=30) as s:
        s.write(b"\r")
        seen = s.read_until(b">>> ")
        assert seen.endswith(b">>> "), seen
        s.write(command + b"\r")
        seen = s.read_until(command + b"\r\n") + s.read_until(b">>> ")
        assert seen.endswith(b">>> "), seen


def install_image(root, img):
    # what a firmware update leaves in the simulated flash: img in ota_1, booting it next
    from firmware.board import partition_sim as ps

    ps.flash(str(root))
    ps.bootloader(str(root))
    ps.Partition("ota_1").writeblocks(0, img)
    ps.Partition("ota_1").set_boot()
