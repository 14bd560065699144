"""The names an ESP32_GENERIC image of MicroPython holds in ROM beyond the unix port's, for the
ESP32 twin (tools/twin.py builds them into its ROM). A name the firmware uses that is in the
board's ROM costs its heap nothing, while the unix port would intern it on the heap: machine,
network and esp32 names (ifconfig, isconnected, read_u16 ...) and those of the modules the
official image freezes (dht, onewire, ntptime, requests, umqtt ...). Without them the twin
charges the firmware for about 40 interned names a board does not.

Written to tools/esp32_qstrs.h from a MicroPython source tree and the micropython-lib tree its
submodule names (both public; not needed to build the twin, which uses the header):

  python -m tools.esp32_qstrs MICROPYTHON_DIR MICROPYTHON_LIB_DIR [--mpy-cross PATH]
      [--source "MicroPython v1.28.0, micropython-lib 8380c7b"]

The names are those the port's C sources (ports/esp32 and the extmod modules only the board
has: machine, network, bluetooth, onewire, webrepl, framebuf, espnow) write as MP_QSTR_x, spelt
as the string they stand for (MP_QSTR__slash_lib is "/lib"), and the strings in the qstr
tables of the modules ports/esp32/boards/manifest.py freezes, compiled with mpy-cross ("/lib",
".tmp" and "0.0.0.0" are among them). C names behind a chip's #if count for every chip (a few
more than the classic ESP32 has); strings a Q() line cannot hold (control characters, quotes,
comment marks) are left out (a few fewer).
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "esp32_qstrs.h"
EXTMOD = ["modmachine.c", "modnetwork.c", "modbluetooth.c", "modonewire.c", "modwebrepl.c"]
EXTMOD += ["modframebuf.c", "modespnow.c"]
# how MicroPython's makeqstrdata.py spells a character of a name in MP_QSTR_x: _dot_ is "."
ESCAPES = {"slash": "/", "dot": ".", "hyphen": "-", "colon": ":", "space": " ", "percent": "%"}
ESCAPES.update({"hash": "#", "star": "*", "bang": "!", "comma": ",", "semicolon": ";"})
ESCAPED = re.compile(r"_(%s)_" % "|".join(ESCAPES))


def _vuint(b, i):
    v = 0
    while True:
        c = b[i]
        i += 1
        v = v << 7 | c & 0x7F
        if not c & 0x80:
            return v, i


def mpy_names(data, frozen=False):
    """The strings in a .mpy v6 file's qstr table (those of the static set are indices); with
    frozen, also its str constants shorter than 25 characters, which freezing (mpy-tool.py's
    PERSISTENT_STR_INTERN_THRESHOLD) makes names in ROM too."""
    if data[:2] != b"M\x06":
        raise ValueError("not a .mpy v6 file")
    n, i = _vuint(data, 4)
    n_obj, i = _vuint(data, i)
    names = []
    for _ in range(n):
        v, i = _vuint(data, i)
        if not v & 1:
            names.append(data[i : i + (v >> 1)].decode())
            i += (v >> 1) + 1
    for _ in range(n_obj if frozen else 0):
        i = _constant(data, i, names)
    return names


def frozen_names(cross, src, out, target=None):
    """The names freezing src (as target: its name on the board) puts in ROM, read from the
    .mpy that mpy-cross cross compiles it to at out."""
    name = ["-s", target] if target else []
    subprocess.run([str(cross), "-o", str(out)] + name + [str(src)], check=True)
    return mpy_names(out.read_bytes(), frozen=True)


def _constant(data, i, names):
    # past one object of the table (persistentcode.c's MP_PERSISTENT_OBJ_*: None, False, True
    # and ... are a byte, a tuple its count and items, the rest a length and bytes), a str
    # shorter than 25 characters added to names
    kind = data[i]
    if kind <= 4:
        return i + 1
    n, i = _vuint(data, i + 1)
    if kind == 10:
        for _ in range(n):
            i = _constant(data, i, names)
        return i
    if kind == 5 and n < 25:
        names.append(data[i : i + n].decode())
    return i + n + (kind in (5, 6))


def frozen_files(mp, lib):
    sys.path.insert(0, str(mp / "tools"))
    import manifestfile

    esp32 = mp / "ports" / "esp32"
    m = manifestfile.ManifestFile(
        manifestfile.MODE_FREEZE,
        {
            "MPY_DIR": str(mp),
            "MPY_LIB_DIR": str(lib),
            "PORT_DIR": str(esp32),
            "BOARD_DIR": str(esp32 / "boards" / "ESP32_GENERIC"),
        },
    )
    m.execute(str(esp32 / "boards" / "manifest.py"))
    return [(f.full_path, f.target_path) for f in m.files() if f.full_path.endswith(".py")]


def names(mp, lib, cross):
    c = sorted((mp / "ports" / "esp32").glob("*.[ch]"))
    c += sorted((mp / "extmod").glob("machine_*.c"))
    c += [mp / "extmod" / e for e in EXTMOD if (mp / "extmod" / e).is_file()]
    found = set()
    for p in c:
        found.update(map(spelt, re.findall(r"\bMP_QSTR_(\w+)", p.read_text(errors="replace"))))
    with tempfile.TemporaryDirectory() as tmp:
        for src, target in frozen_files(mp, lib):
            found.update(frozen_names(cross, src, Path(tmp) / "m.mpy", target))
    return sorted(n for n in found if writable(n))


def spelt(c_name):
    """The string a C name MP_QSTR_<c_name> stands for."""
    return ESCAPED.sub(lambda m: ESCAPES[m.group(1)], c_name)


def writable(name):
    """Whether a Q() line holds name: the header goes through the C preprocessor, and a line
    ends it."""
    bad = ("'", '"', "//", "/*")
    return name and name.isprintable() and not any(b in name for b in bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("micropython", type=Path)
    ap.add_argument("micropython_lib", type=Path)
    ap.add_argument("--mpy-cross", default="mpy-cross")
    ap.add_argument("--source", default="", help="what the trees are, for the header")
    a = ap.parse_args()
    found = names(a.micropython.resolve(), a.micropython_lib.resolve(), a.mpy_cross)
    head = "// %d names in an ESP32_GENERIC image's ROM (%s): written by tools/esp32_qstrs.py\n"
    OUT.write_text(head % (len(found), a.source) + "".join("Q(%s)\n" % n for n in found))
    print("%s: %d names" % (OUT.relative_to(Path.cwd()), len(found)))


if __name__ == "__main__":
    main()
