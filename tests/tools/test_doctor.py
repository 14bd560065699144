# firmware/doctor.py on the MicroPython unix port with the simulated board, against tbsim: the
# report of a healthy device, and each problem made for real (unknown token, nothing on the
# port, a name that does not resolve, the network down, a broken config).
import json

from toolsupport import TOKEN, device_config, doctor

from tools.link import Link


def device(tmp_path, cfg):
    root = tmp_path / "device"
    root.mkdir()
    (root / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return root


def by_section(lines):
    return {x[:8].strip(): x[9:] for x in lines if x[:1] != " " and x[8:9] == " "}


def test_a_healthy_device(tmp_path, sim):
    sim.create_device("healthy", token=TOKEN)
    lines = doctor(device(tmp_path, device_config(sim.coap_port)))
    assert lines[0] == "coapboard doctor: unix-sim, MicroPython 1.29.0"
    where = "127.0.0.1:%d" % sim.coap_port
    assert lines[1:3] == [
        "config   ok: server %s, token TOOL…" % where,
        '         wifi "workshop" (password corr…), 1 sensors, 0 gpio, interval 1 s, log info',
    ]
    s = by_section(lines)
    assert s["wifi"].startswith('joined "workshop": ip 127.0.0.1, mac 02:00:')
    assert s["server"].startswith("%s (127.0.0.1) answers a CoAP ping in " % where)
    assert s["token"] == "accepted by the server"
    # as the bootloader leaves a serial flash at its first boot
    assert s["ota"] == "running ota_0, state valid (seq 1)"
    assert s["memory"].startswith("free heap ") and "; flash " in s["memory"]
    assert lines[-1] == "doctor: no problems found"
    assert TOKEN not in "\n".join(lines) and "correct-horse" not in "\n".join(lines)


def test_an_unknown_token(tmp_path, sim):
    lines = doctor(device(tmp_path, device_config(sim.coap_port, token="NOT_KNOWN_HERE")))
    assert by_section(lines)["token"] == (
        "PROBLEM: the server does not know this access token (4.01)"
    )
    assert lines[-1] == "doctor: 1 problem(s)"


def test_nothing_listening_and_no_dns(tmp_path, sim):
    port = sim.coap_port
    sim.stop()  # the port is closed now: loopback answers with ICMP port unreachable
    lines = doctor(device(tmp_path, device_config(port)))
    assert by_section(lines)["server"] == (
        "PROBLEM: 127.0.0.1:%d (127.0.0.1) refused: nothing listens on udp/%d there" % (port, port)
    )
    cfg = device_config(5683, server={"host": "no-such-host.invalid"})
    (tmp_path / "device" / "config.json").write_text(json.dumps(cfg))
    s = by_section(doctor(tmp_path / "device"))
    assert s["server"].startswith("PROBLEM: DNS lookup of no-such-host.invalid failed (")
    assert "token" not in s


def test_network_down_and_a_bad_config(tmp_path):
    root = device(tmp_path, device_config(5683))
    (root / "network.json").write_text('{"up": false}')
    lines = doctor(root)
    assert lines[5:8] == [  # after config (2 lines), port and clock
        'wifi     not joined; one attempt to join "workshop" ...',
        'wifi     PROBLEM: not joined to "workshop": check the name and password, that it is '
        "2.4 GHz, and the signal here",
        "server   not checked: no network",
    ]
    (root / "config.json").write_text(json.dumps(device_config("x", led={"pin": 34})))
    lines = doctor(root)
    assert lines[1:3] == [
        "config   PROBLEM: led.pin: 34 is input-only on ESP32, cannot be an output",
        'config   PROBLEM: server.port: expected an integer 1-65535, got "x"',
    ]
    assert lines[-1] == "doctor: 1 problem(s)"


def test_from_the_repl_of_a_deployed_board(unix_board, sim):
    # what a technician types: the deployed .mpy, over the serial link
    sim.create_device("deployed", token=TOKEN)
    board = unix_board(deployed=True)
    (board.root / "config.json").write_text(json.dumps(device_config(sim.coap_port)))
    link = Link(board.port, resume=True)
    try:
        out = link.t.exec("import firmware.doctor").decode().splitlines()
        assert link.t.exec("print(firmware.doctor.__file__)").strip() == b"firmware/doctor.mpy"
    finally:
        link.close()
    assert out[-1] == "doctor: no problems found", out


def test_update_state_is_shown(tmp_path, sim):
    sim.create_device("updating", token=TOKEN)
    root = device(tmp_path, device_config(sim.coap_port))
    pkg = ["coapboard", "0.3.0", 900000, "ab" * 32, "SHA256"]
    (root / "ota.json").write_text(json.dumps({"fw": {"failed": pkg}}))
    progress = {"kind": "sw", "pkg": ["app", "0.2.0", 50000, "cd", "MD5"], "flashed": 16384}
    (root / "ota_progress.json").write_text(json.dumps(dict(progress, slot="a")))
    (root / "apps").mkdir()
    slot = {"run": "", "prev": "", "state": "valid", "aborted": "a", "reason": "ImportError"}
    (root / "apps" / "slot.json").write_text(json.dumps(slot))
    lines = doctor(root)
    i = lines.index("ota      running ota_0, state valid (seq 1)")
    assert lines[i + 1 : i + 4] == [
        "         fw coapboard 0.3.0 failed, not fetched again",
        "         sw download of app 0.2.0: 16384 of 50000 bytes in flash,"
        " resumes at the next try",
        "         app slot factory (valid), a abandoned: ImportError",
    ]


# ssl as MicroPython 1.24 has it: no PROTOCOL_DTLS_CLIENT (DTLS came with 1.25)
SSL_1_24 = """
from tls import CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED, PROTOCOL_TLS_CLIENT
"""


def test_what_this_micropython_cannot_do_is_flagged(tmp_path, sim):
    sim.create_device("port", token=TOKEN)
    root = device(tmp_path, device_config(sim.coap_port))
    s = by_section(doctor(root))
    assert s["port"].startswith("MicroPython 1.29.0, chip: none (simulation); DTLS yes, PSK ")
    assert s["clock"] == "set"
    old = tmp_path / "v124"
    old.mkdir()
    (old / "ssl.py").write_text(SSL_1_24)
    s = by_section(doctor(root, old))
    assert s["port"].startswith("MicroPython 1.29.0, chip: none (simulation); DTLS no (1.25 ")
    cfg = device_config(sim.coap_port, server={"host": "127.0.0.1", "coaps": True, "ca": "ca.pem"})
    (root / "config.json").write_text(json.dumps(cfg))
    (root / "board.json").write_text(json.dumps({"chip": "esp32"}))
    (root / "network.json").write_text(json.dumps({"clock": False}))
    lines = doctor(root, old)
    s = by_section(lines)
    assert s["port"] == (
        "PROBLEM: MicroPython 1.29.0 has no DTLS, which coaps needs: 1.25 or later has it"
    )
    assert s["clock"] == "not set: NTP has not answered; certificate checks wait for it"
    assert "chip_temp is raw on an ESP32" in "\n".join(lines)
