# tools/deploy.py against the MicroPython unix port behind a pty, reached through mpremote's
# transport: what lands on the board's filesystem (compared byte for byte), what a re-deploy
# copies, the .mpy version check, and the first log lines of the started firmware.
import json
import subprocess
import sys

import pytest
from toolsupport import REPO, device_config

from tools import deploy
from tools.link import Link


def files_for(board, mpy_dir, cfg):
    link = Link(board.port, resume=True)
    info = link.info()
    return link, info, deploy.collect(info, json.dumps(cfg).encode(), out=mpy_dir)


def test_first_deploy_copies_everything_and_a_redeploy_only_what_changed(unix_board, mpy_dir):
    board = unix_board()
    link, info, files = files_for(board, mpy_dir, device_config(5683))
    try:
        assert info["platform"] == "linux" and info["mpy"] & 0xFF == 6
        assert "lib/coap/client.mpy" in files and "firmware/app.mpy" in files
        assert "firmware/manifest.mpy" not in files
        copied, same = deploy.deploy(link, files, log=lambda *a: None)
        assert sorted(copied) == sorted(files) and same == []
        for path, data in files.items():  # the board's filesystem is this folder
            assert (board.root / path).read_bytes() == data, path
        assert not list(board.root.rglob("*.tmp"))

        copied, same = deploy.deploy(link, files, log=lambda *a: None)
        assert copied == [] and sorted(same) == sorted(files)

        files["config.json"] = json.dumps(device_config(5684)).encode()
        log = []
        copied, same = deploy.deploy(link, files, log=log.append)
        assert copied == ["config.json"] and len(same) == len(files) - 1
        assert log[-1] == "deploy: 1 copied, %d up to date" % (len(files) - 1)
        assert json.loads((board.root / "config.json").read_text())["server"]["port"] == 5684
    finally:
        link.close()


def test_files_are_compiled_again_when_how_they_are_compiled_changes(tmp_path):
    # by the sources' times alone, a change of mpy-cross's options would leave old .mpy files
    files, _ = deploy.build(out=tmp_path)
    mpy = dict(files)["firmware/app.mpy"]
    stamp = tmp_path / "recipe"
    assert stamp.read_text().startswith(deploy.RECIPE)
    old = mpy.read_bytes()
    mpy.write_bytes(b"stale")  # newer than its source: a build by times keeps it
    deploy.build(out=tmp_path)
    assert mpy.read_bytes() == b"stale"
    stamp.write_text("-O3\n" + stamp.read_text())
    deploy.build(out=tmp_path)
    assert mpy.read_bytes() == old
    client = dict(files)["lib/coap/client.mpy"]
    assert b"/lib/coap/client.mpy" in client.read_bytes()
    deploy.build(out=tmp_path, lib="lib")  # the twin's: it finds lib/ at "lib"
    assert b"/lib/coap/" not in client.read_bytes()
    assert b"lib/coap/client.mpy" in client.read_bytes()


def test_a_py_that_would_shadow_the_mpy_is_removed(unix_board, mpy_dir):
    board = unix_board(deployed=True)
    (board.root / "lib" / "coap" / "client.py").write_text("raise ImportError('old copy')\n")
    (board.root / "notes.txt").write_text("the maker's own file")
    (board.root / "apps").mkdir()
    (board.root / "apps" / "slot.json").write_text('{"run": "a", "prev": "", "state": "valid"}')
    link, _, files = files_for(board, mpy_dir, device_config(5683))
    try:
        log = []
        deploy.deploy(link, files, log=log.append)
        assert "remove lib/coap/client.py (it would shadow the .mpy)" in log
        assert log[-1] == (
            'deploy: the board ran app slot "a" of a software update; now the deployed files'
        )
        assert not (board.root / "apps" / "slot.json").exists()
        assert not (board.root / "lib" / "coap" / "client.py").exists()
        assert (board.root / "notes.txt").read_text() == "the maker's own file"
        # the deployed code imports on the board: the .mpy, not the removed .py
        out = link.t.exec("import coap.client, firmware.config; print(coap.client.__file__)")
        assert out.strip() == b"lib/coap/client.mpy"
    finally:
        link.close()


@pytest.mark.parametrize(
    "info, why",
    [
        ({"mpy": 0x0A05, "version": "1.19.1"}, "loads .mpy v5, mpy-cross makes v6"),
        ({"mpy": None, "version": "1.12.0"}, "cannot load .mpy files"),
    ],
)
def test_a_board_that_cannot_load_our_mpy_is_refused(info, why):
    with pytest.raises(deploy.DeployError, match=why):
        deploy.check_mpy(info, 6)
    deploy.check_mpy({"mpy": 0x0A06, "version": "1.26.1"}, 6)  # ESP32 (xtensawin), v6.x


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.deploy", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_cli_deploys_starts_the_firmware_and_shows_its_first_lines(
    unix_board, sim, tmp_path, mpy_dir
):
    sim.create_device("deployed", token="DEPLOYED_TOKEN_0001")
    board = unix_board(deployed=True)  # the code is there already: only the config is copied
    cfg = tmp_path / "device.json"
    cfg.write_text(json.dumps(device_config(sim.coap_port, token="DEPLOYED_TOKEN_0001")))
    p = run("--port", board.port, "--resume", "--config", str(cfg), "--seconds", "10",
            "--lines", "7", "--build", str(mpy_dir))  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "deploy: %s runs MicroPython 1.29.0 (linux)" % board.port
    assert lines[1:3] == [
        "copy config.json (%d bytes)" % cfg.stat().st_size,
        "deploy: 1 copied, %d up to date" % (len(deploy.sources()) + len(deploy.PLAIN)),
    ]
    # a soft reset starts it; the new config.json is checked, then it starts again without
    # the checker
    assert lines[3:] == [
        "board| MPY: soft reboot",
        "board| I app: config.json checked: restarting to run without the checker",
        "board| board: soft reset",
        "board| MPY: soft reboot",
        "board| I app: firmware coapboard 0.1.0 on unix-sim",
        "board| I board: network up, ip 127.0.0.1",
        "board| I app: reporting to 127.0.0.1:%d" % sim.coap_port,
    ]


def test_cli_refuses_a_bad_config_before_touching_the_board(unix_board, tmp_path, mpy_dir):
    board = unix_board()
    cfg = tmp_path / "device.json"
    cfg.write_text(json.dumps(device_config("abc", sensors=[{"type": "dht22", "pin": 36}])))
    want = [
        "deploy: config %s:" % cfg,
        "  sensors[0].pin: 36 is input-only on ESP32, cannot be an output",
        '  server.port: expected an integer 1-65535, got "abc"',
    ]
    p = run("--port", board.port, "--resume", "--config", str(cfg), "--build", str(mpy_dir))
    assert (p.returncode, p.stdout.splitlines()) == (2, want)
    assert list(board.root.iterdir()) == []
    # no board at all: the config is still what is reported, and nothing is built
    out = tmp_path / "mpy"
    p = run("--port", str(tmp_path / "ttyUSB9"), "--config", str(cfg), "--build", str(out))
    assert (p.returncode, p.stdout.splitlines()) == (2, want)
    assert not out.exists()
    cfg.write_text("{not json")
    p = run("--port", board.port, "--resume", "--config", str(cfg))
    assert p.stdout.startswith("deploy: config %s: invalid JSON" % cfg), p.stdout


def test_cli_says_when_the_port_is_missing(tmp_path):
    p = run("--port", str(tmp_path / "ttyUSB9"))
    assert (p.returncode, p.stdout) == (2, "deploy: serial port %s not found: plug the board in "
        "(a data cable, not charge-only) and look for it with: ls /dev/ttyUSB* /dev/ttyACM*\n"
        % (tmp_path / "ttyUSB9"))  # fmt: skip
    p = run("--port", "")
    assert p.stdout == "deploy: no serial port: give the board's port, e.g. PORT=/dev/ttyUSB0\n"
    (tmp_path / "notes.txt").write_text("")
    p = run("--port", str(tmp_path / "notes.txt"))
    assert p.stdout == "deploy: %s is not a serial port\n" % (tmp_path / "notes.txt")
