# What makes the twin charge the heap what a board charges it, beyond 32-bit objects: the names
# an ESP32 image holds in ROM (tools/esp32_qstrs.h) and module file names as a board has them.
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.twin import scenarios
from tools import deploy, esp32_qstrs, simdevice, twin

QSTRS = "import micropython; micropython.qstr_info()"


@pytest.fixture(scope="module", autouse=True)
def built():
    scenarios.prepare()


def on_twin(code, env=None):
    with tempfile.TemporaryDirectory() as tmp:
        p = simdevice.on_twin(Path(tmp), code, timeout=30, env=env)
    return p.stdout + p.stderr


def interned(name):
    # qstrs interned on the heap when the twin looks name up as an attribute
    code = "%s\nhasattr(1, %r + %r)\n%s\n" % (QSTRS, name[:3], name[3:], QSTRS)
    counts = [int(s.split("n_qstr=")[1].split(",")[0]) for s in on_twin(code).splitlines()]
    return counts[1] - counts[0]


def test_names_in_an_esp32_images_rom_cost_the_twins_heap_nothing():
    rom = Path(twin.ROM_NAMES).read_text()
    assert "Q(isconnected)\n" in rom and "Q(read_u16)\n" in rom  # network, machine
    assert "Q(convert_temp)\n" in rom  # ds18x20, frozen into the image
    assert interned("isconnected") == 0 and interned("convert_temp") == 0
    assert interned("no_board_has_this_name") == 1


def test_strings_of_an_images_frozen_modules_and_c_names_are_in_its_rom_as_spelt():
    rom = Path(twin.ROM_NAMES).read_text()
    # "/lib" is MP_QSTR__slash_lib in ports/esp32/main.c; ".tmp" and "0.0.0.0" are strings of
    # frozen modules (no identifiers); "lib" is the twin's stand-in for "/lib"
    assert esp32_qstrs.spelt("_slash_lib") == "/lib" and esp32_qstrs.spelt("isconnected")
    for name in ("/lib", ".tmp", "0.0.0.0", "boot.py"):
        assert "Q(%s)\n" % name in rom
    assert "Q(_slash_lib)\n" not in rom
    assert not esp32_qstrs.writable("\r\n") and not esp32_qstrs.writable("PASS = '%r'")
    assert esp32_qstrs.writable("% 9d %s")


def test_a_boot_interns_only_what_a_boards_boot_does():
    # a board interns main.py's file name to run it (its boot is C); the twin's simboot is
    # frozen, run with -m, its name a stand-in in ROM. Strings in a board's ROM cost nothing.
    code = 'print(len(("/lib", ".tmp", "0.0.0.0", "boot.py", "lib")))\n'
    # the simulated flash, pins and sensors stand for C: importing them interns nothing
    code += "import partition_sim, parts_sim\n"
    out = on_twin(code + "import micropython\nmicropython.qstr_info(1)\n")
    assert out.startswith("5\n"), out
    assert re.findall(r"^Q\((.*)\)$", out, re.M) == ["main.py"], out


def test_the_boot_counts_the_names_as_the_process_ends_when_asked():
    # bench/twin_heap.py --names: a reset (an exit) still counts them; not asked, no line
    code = "import sys\nhasattr(1, 'an_interned_' + 'name_of_its_own')\nsys.exit(3)\n"
    out = on_twin(code, {"SIMBOOT_NAMES": "1"})
    counts = re.findall(r"^qstr pool: n_pool=\d+, n_qstr=(\d+),", out, re.M)
    assert counts == ["2"], out  # main.py and an_interned_name_of_its_own
    assert "qstr pool" not in on_twin(code)


def test_a_module_is_known_by_its_board_file_name_in_tracebacks():
    # mpy-cross -s names the module as the board imports it (its __file__): one interned
    # string for both, and what a traceback shows
    assert deploy.board_name("firmware/app.py") == "firmware/app.mpy"
    assert deploy.board_name("lib/coap/client.py") == "/lib/coap/client.mpy"
    out = on_twin("import firmware\nprint(firmware.__file__)\nfirmware.drop(1)\n")
    assert out.startswith("firmware/__init__.mpy\n"), out
    assert 'File "firmware/__init__.mpy", line' in out, out
    # the twin finds lib/ at "lib" (a board at "/lib"), and its files are named for that
    out = on_twin("from coap import codec\nprint(codec.__file__)\ncodec.no_such_name\n")
    assert out.startswith("lib/coap/codec.mpy\n"), out
    assert 'File "lib/coap/codec.mpy", line' in out, out


BOARD_COST = """
import gc, sys


class Fake:  # esp32, machine and network: C in an ESP32 image
    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kw):
        return self


for name in ("esp32", "machine", "network"):
    sys.modules[name] = Fake()
import firmware.board

gc.collect()
before = gc.mem_alloc()
import firmware.board.%s
gc.collect()
print(gc.mem_alloc() - before)
"""


def test_the_simulated_board_costs_the_heap_no_more_than_the_esp32_board():
    # its flash, pins and sensors stand in for C and frozen drivers and are frozen in
    sim, esp32 = (int(on_twin(BOARD_COST % b).split()[-1]) for b in ("sim", "esp32"))
    assert 2000 < sim <= esp32, (sim, esp32)


def test_the_twins_stand_ins_hold_no_name_the_firmware_interns(tmp_path):
    # Frozen into the twin, a stand-in's names are in its ROM: one the firmware has too would
    # cost the twin's heap nothing and a board's an interned name (a module's dotted name is
    # interned at its import). The simulated board's own names stand for esp32.py's.
    out = simdevice.deployed()
    sim = {"firmware/board/%s.mpy" % m for m in ("sim", "partition_sim", "parts_sim")}
    firmware = set()
    for f in out.rglob("*.mpy"):
        rel = f.relative_to(out).as_posix()
        if rel not in sim:
            firmware.update(esp32_qstrs.mpy_names(f.read_bytes(), frozen=True))
        firmware.add(rel[:-4].removeprefix("lib/").removesuffix("/__init__").replace("/", "."))
    rom = twin.rom_names()
    out = tmp_path / "m.mpy"
    shared = {}
    for src in twin.SIM_FROZEN:
        names = set(esp32_qstrs.frozen_names(twin.MPY_CROSS, src, out))
        shared[src.name] = sorted(names & firmware - rom)
    assert shared == {s.name: [] for s in twin.SIM_FROZEN}


def test_the_names_of_a_compiled_module_are_read_from_its_mpy(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def frobnicate(widget):\n    return widget.sprocket\n")
    out = tmp_path / "m.mpy"
    subprocess.run([str(twin.MPY_CROSS), "-o", str(out), "-s", "m.mpy", str(src)], check=True)
    names = esp32_qstrs.mpy_names(out.read_bytes())
    assert names[0] == "m.mpy"  # the source name comes first
    assert {"frobnicate", "sprocket"} <= set(names)
    with pytest.raises(ValueError):
        esp32_qstrs.mpy_names(b"MX\x00\x00")


def test_a_board_shaped_run_has_boot_and_main_where_a_board_keeps_them(tmp_path):
    # linked into the board's folder, again on every start; a main.py of its own is left as it
    # is, and run when it is the one asked for
    root = tmp_path / "board"
    root.mkdir()
    argv, _ = simdevice.twin(root, 64)
    assert argv[-4:] == ["-m", "simboot", "boot.py", "main.py"]
    assert (root / "boot.py").resolve() == simdevice.REPO / "boot.py"
    assert (root / "main.py").resolve() == simdevice.REPO / "main.py"
    simdevice.twin(root, 64, main=simdevice.REPO / "bench" / "fw_main.py")
    assert (root / "main.py").resolve() == simdevice.REPO / "bench" / "fw_main.py"
    (root / "main.py").unlink()
    (root / "main.py").write_text("print('mine')\n")
    simdevice.twin(root, 64, main=root / "main.py")
    assert (root / "main.py").read_text() == "print('mine')\n"
    with pytest.raises(FileExistsError, match="a file of its own"):
        simdevice.twin(root, 64)
