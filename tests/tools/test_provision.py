# tools/provision.py: configs from arguments and CSV rows checked with the firmware's rules, and
# the watcher's verdicts, each produced for real: the firmware on the unix port (behind a pty,
# deployed by the tool) against tbsim, with the fault made the way it happens in the field.
import json
import socket

import pytest
from toolsupport import TOKEN

from tools import provision

KEY, SECRET = "FIELD_PROVISION_KEY", "FIELD_PROVISION_SECRET"


def run(capsys, *argv):
    status = provision.main(list(argv))
    return status, capsys.readouterr().out.splitlines()


def args(board, server, *more, mpy_dir):
    return ["--port", board.port, "--resume", "--build", str(mpy_dir), "--ssid", "workshop",
            "--password", "correct-horse-battery", "--server", server, "--timeout", "15",
            *more]  # fmt: skip


def verdict(out, name="device"):
    return [x for x in out if x.startswith("provision: %s: " % name)][-1]


@pytest.fixture
def profile(sim):
    return sim.call(
        sim.store.save_profile,
        {"name": "field", "provision_type": "ALLOW_CREATE_NEW_DEVICES",
         "provision_key": KEY, "provision_secret": SECRET},
    )  # fmt: skip


def closed_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- reports in


def test_a_board_with_a_token_reports_in(capsys, unix_board, sim, mpy_dir):
    dev = sim.create_device("greenhouse-01", token=TOKEN)
    board = unix_board(deployed=True)
    where = "127.0.0.1:%d" % sim.coap_port
    status, out = run(capsys, *args(board, where, "--name", "greenhouse-01", "--token", TOKEN,
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 0, "\n".join(out)
    assert verdict(out, "greenhouse-01") == "provision: greenhouse-01: reporting to " + where
    assert "copy config.json" in " ".join(out)
    cfg = json.loads((board.root / "config.json").read_text())
    assert cfg["token"] == TOKEN and cfg["wifi"]["ssid"] == "workshop"
    assert cfg["server"] == {"host": "127.0.0.1", "port": sim.coap_port}
    assert sim.attributes(dev["id"], "CLIENT_SCOPE")["board"] == "unix-sim"


def test_a_board_provisions_itself_and_reports_in(capsys, unix_board, sim, profile, mpy_dir):
    board = unix_board(deployed=True)
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % sim.coap_port, "--name", "field-7",
                                    "--provision-key", KEY, "--provision-secret", SECRET,
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 0, "\n".join(out)
    assert verdict(out, "field-7").endswith("(provisioned, token stored on the board)")
    dev = sim.call(sim.store.device_by_name, "field-7")
    token = sim.call(sim.store.credentials, dev["id"])["credentials_id"]
    assert json.loads((board.root / "config.json").read_text())["token"] == token


# --- says what failed


def test_bad_token(capsys, unix_board, sim, mpy_dir):
    board = unix_board(deployed=True)
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % sim.coap_port,
                                    "--token", "NOT_A_KNOWN_TOKEN", mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out) == (
        "provision: device: FAILED: bad token: the server does not know this access token "
        "(4.01): copy the device's access token from ThingsBoard again"
    )


def test_provisioning_refused(capsys, unix_board, sim, profile, mpy_dir):
    board = unix_board(deployed=True)
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % sim.coap_port, "--name", "field-8",
                                    "--provision-key", KEY, "--provision-secret", "WRONG",
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out, "field-8") == (
        "provision: field-8: FAILED: provisioning refused (4.00 NOT_FOUND: Provision data was "
        "not found!): check provision_key and provision_secret against the device profile, and "
        "that provisioning is enabled there"
    )


def test_provisioning_refused_for_a_name_in_use(capsys, unix_board, sim, profile, mpy_dir):
    sim.create_device("field-9")
    board = unix_board(deployed=True)
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % sim.coap_port, "--name", "field-9",
                                    "--provision-key", KEY, "--provision-secret", SECRET,
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out, "field-9") == (
        "provision: field-9: FAILED: provisioning refused (4.00 FAILURE: Failed to provision "
        "device!): the name is already taken (a profile that creates devices), or is no "
        "pre-provisioned device, or was provisioned before: use another name or prepare the "
        "device in ThingsBoard"
    )


def test_wifi_not_joined(capsys, unix_board, sim, mpy_dir):
    board = unix_board(deployed=True)
    board.write_json("network.json", {"up": False})  # the simulated radio finds no network
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % sim.coap_port, "--token", TOKEN,
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out) == (
        'provision: device: FAILED: Wi-Fi not joined: network "workshop" (3 attempts): check '
        "wifi_ssid and wifi_password, that it is a 2.4 GHz network, and the signal where the "
        "board is"
    )


def test_dns(capsys, unix_board, mpy_dir):
    board = unix_board(deployed=True)
    status, out = run(capsys, *args(board, "no-such-host.invalid", "--token", TOKEN,
                                    mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out).startswith(
        "provision: device: FAILED: DNS: the board cannot look up the server "
        '"no-such-host.invalid" ('
    )
    assert verdict(out).endswith("): check the server name, or give its IP address")


def test_server_unreachable(capsys, unix_board, mpy_dir, tmp_path):
    board = unix_board(deployed=True)
    template = tmp_path / "template.json"  # a short interval: the first post gives up soon
    template.write_text(json.dumps({"telemetry": {"interval_s": 1}}))
    port = closed_udp_port()
    status, out = run(capsys, *args(board, "127.0.0.1:%d" % port, "--token", TOKEN,
                                    "--template", str(template), mpy_dir=mpy_dir))  # fmt: skip
    assert status == 1
    assert verdict(out) == (
        "provision: device: FAILED: server unreachable: no CoAP answer from 127.0.0.1:%d: "
        "check the server address and port, that ThingsBoard's CoAP transport is enabled, "
        "and that udp/%d is open" % (port, port)
    )


def test_no_board_on_the_port(capsys, tmp_path, mpy_dir):
    status, out = run(capsys, "--port", str(tmp_path / "ttyUSB9"), "--server", "tb", "--ssid",
                      "w", "--token", TOKEN, "--build", str(mpy_dir))  # fmt: skip
    assert status == 1
    assert "FAILED: serial port %s not found: plug the board in" % (tmp_path / "ttyUSB9") in (
        verdict(out)
    )


@pytest.mark.parametrize(
    "lines, verdict_",
    [
        (["I app: firmware coapboard 0.1.0 on esp32", "Traceback (most recent call last):",
          '  File "main.py", line 4, in <module>', "MemoryError: memory allocation failed"],
         "the firmware crashed: MemoryError: memory allocation failed"),
        (["E app: config: gpio[0].pin: 6 is wired to the SPI flash on ESP32",
          "E app: config: server.port: expected an integer 1-65535, got 0",
          "E app: fix config.json; the firmware is stopped, the REPL is free"],
         "the firmware rejected its config: gpio[0].pin: 6 is wired to the SPI flash on ESP32; "
         "server.port: expected an integer 1-65535, got 0"),
        (["I app: firmware coapboard 0.1.0 on esp32", "W board: network workshop not joined, "
          "retry in 1000 ms"], 'Wi-Fi not joined: network "workshop" (1 attempts)'),
        (["I app: firmware coapboard 0.1.0 on esp32"],
         "no report from the board (its log shows no problem either)"),
    ],
)  # fmt: skip
def test_what_else_the_log_can_say(lines, verdict_):
    cfg = {"wifi": {"ssid": "workshop"}, "server": {"host": "tb", "port": 5683}}
    ok, msg = provision.diagnose(iter(lines), cfg)
    assert not ok and msg.startswith(verdict_)


# --- batch


def test_batch_walks_the_csv_and_ends_with_a_summary(capsys, unix_board, sim, tmp_path, mpy_dir):
    sim.create_device("ok-board", token=TOKEN)
    a, b = unix_board("a", deployed=True), unix_board("b", deployed=True)
    where = "127.0.0.1:%d" % sim.coap_port
    rows = [
        "name,token,wifi_ssid,wifi_password,server,port",
        "ok-board,%s,workshop,pw,%s,%s" % (TOKEN, where, a.port),
        "bad-token,NOT_KNOWN,workshop,pw,%s,%s" % (where, b.port),
        "bad-port,%s,workshop,pw,127.0.0.1:abc,%s" % (TOKEN, b.port),
        "no-wifi,%s,,,%s,%s" % (TOKEN, where, b.port),
    ]
    (tmp_path / "boards.csv").write_text("\n".join(rows) + "\n")
    status, out = run(capsys, "--csv", str(tmp_path / "boards.csv"), "--batch", "--resume",
                      "--timeout", "15", "--build", str(mpy_dir))  # fmt: skip
    assert status == 1
    csvp = tmp_path / "boards.csv"
    # bad rows are reported before any board is touched
    assert out[:2] == [
        'provision: %s line 4: bad-port: server: expected a port 1-65535 after "127.0.0.1:", '
        'got "abc"' % csvp,
        "provision: %s line 5: no-wifi: wifi.ssid: expected the Wi-Fi network name (empty: no "
        "Wi-Fi, unix port only)" % csvp,
    ]
    table = out[-6:]
    w = len(a.port)
    assert table == [
        "name       %s  result  detail" % "port".ljust(w),
        'bad-port   %s  FAILED  config: server: expected a port 1-65535 after "127.0.0.1:", '
        'got "abc"' % b.port,
        "no-wifi    %s  FAILED  config: wifi.ssid: expected the Wi-Fi network name (empty: no "
        "Wi-Fi, unix port only)" % b.port,
        "ok-board   %s  ok      reporting to %s" % (a.port, where),
        "bad-token  %s  FAILED  bad token: the server does not know this access token (4.01): "
        "copy the device's access token from ThingsBoard again" % b.port,
        "4 boards: 1 ok, 3 failed",
    ]


# --- input checks (no board)


@pytest.mark.parametrize(
    "fields, why",
    [
        ({"server": "tb", "token": "T", "provision_key": "K"},
         "give a token or a provision key and secret, not both"),
        ({"server": "tb"}, "token: missing (or give provision_key and provision_secret)"),
        ({"server": "tb", "provision_key": "K"},
         "provision_secret: missing, provisioning needs both key and secret"),
        ({"token": "T"}, "server: missing, expected the ThingsBoard host"),
        ({"server": "tb:0", "token": "T"}, 'server: expected a port 1-65535 after "tb:", got "0"'),
        ({"server": "[::1", "token": "T"}, None),
        ({"server": "[::1]x", "token": "T"}, 'server: expected "[address]:port", got "[::1]x"'),
        ({"server": ":5683", "token": "T"}, 'server: expected "host" or "host:port"'),
    ],
)  # fmt: skip
def test_bad_fields_are_named(fields, why):
    if why is None:  # "[::1" without "]" is read as the host "::1"
        assert provision.device_config(fields)["server"]["host"] == "::1"
        return
    with pytest.raises(provision.InputError, match=why.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):  # fmt: skip
        provision.device_config(fields)


def test_config_from_fields_and_template():
    template = {"server": {"host": "old", "port": 1, "observe_refresh_s": 60}, "token": "OLD",
                "log_level": "debug"}  # fmt: skip
    cfg = provision.device_config(
        {"name": "n1", "provision_key": "K", "provision_secret": "S", "wifi_ssid": "w",
         "wifi_password": "p", "server": "[fe80::1]:5690"}, template,
    )  # fmt: skip
    assert cfg == {
        "server": {"host": "fe80::1", "port": 5690, "observe_refresh_s": 60},
        "log_level": "debug",
        "wifi": {"ssid": "w", "password": "p"},
        "provisioning": {"device_name": "n1", "key": "K", "secret": "S"},
    }
    assert template["token"] == "OLD"  # the template itself is left alone
    assert provision.device_config({"token": "T", "server": "tb"})["server"] == {"host": "tb"}


@pytest.mark.parametrize(
    "text, why",
    [
        ("name,token,sevrer\n", 'unknown column "sevrer" (expected some of: name, token, '),
        ("token,server\nT,tb\n", 'expected a header row with at least "name" and "server"'),
        ("name,token,server\nA,T,tb\n,T,tb\n", "line 3: name: missing"),
        ("name,token,server\nA,T,tb\nA,T,tb\n", 'line 3: name "A" is already used on line 2'),
        ("name,token,server\nA,T,tb,extra\n", "line 2: more cells than columns"),
    ],
)
def test_csv_problems_are_named_with_their_line(tmp_path, text, why):
    p = tmp_path / "boards.csv"
    p.write_text(text)
    with pytest.raises(provision.InputError) as e:
        provision.read_csv(p)
    assert str(e.value).startswith(str(p)) and why in str(e.value)


@pytest.mark.parametrize("encoding, at", [("latin-1", "a byte 0xe4"), ("utf-16", "a byte 0xff")])
def test_a_csv_in_another_encoding_is_named_as_such(capsys, tmp_path, encoding, at):
    p = tmp_path / "boards.csv"
    p.write_bytes("name,token,server\nGewächshaus,T,tb\n".encode(encoding))
    status, out = run(capsys, "--csv", str(p), "--batch", "--dry-run")
    assert status == 2
    assert out == [
        'provision: %s: not UTF-8 text (%s): save it as CSV in UTF-8 (in Excel: "CSV UTF-8"; in '
        'LibreOffice: character set "Unicode (UTF-8)")' % (p, at)
    ]


def test_dry_run_prints_masked_configs_and_touches_no_board(capsys, tmp_path):
    p = tmp_path / "boards.csv"
    p.write_text("\ufeffname,token,wifi_ssid,wifi_password,server\n\n"
                 "gh-1,A1B2C3D4E5F6G7H8,shed,longpassword,tb.example.com\n")  # fmt: skip
    status, out = run(capsys, "--csv", str(p), "--row", "gh-1", "--dry-run")
    assert status == 0
    assert out[0] == "provision: gh-1: config for (no port)"
    cfg = json.loads("\n".join(out[1:]))
    assert cfg["token"] == "A1B2…" and cfg["wifi"] == {"ssid": "shed", "password": "long…"}
    status, out = run(capsys, "--csv", str(p), "--row", "gh-2")
    assert status == 2 and out == ['provision: %s: no row named "gh-2"' % p]
    status, out = run(capsys, "--csv", str(p))
    assert status == 2 and out == ["provision: with --csv, give --row NAME or --batch"]
