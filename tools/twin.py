"""The ESP32 twin: MicroPython v1.28.0's unix port built as a 32-bit binary (4-byte pointers and
object headers, 16-byte GC blocks, as on the ESP32's Xtensa core), with the mpy-cross of the
same release. Heap figures measured on it with -X heapsize stand in for the board's GC heap.

The source archive is, in this order: $MICROPYTHON_SRC; the trimmed copy that machines without
internet access keep beside the repository (../shared/vendor), or beside the local repository
this one was cloned from; the release tarball from micropython.org. The build lives in
build/twin/ and is redone only when the archive or the build flags change.

Usage: python -m tools.twin [--frozen]     (prints the paths of what it built)
  --frozen  also a twin with firmware/manifest.py frozen in (code in ROM, as in a custom image)
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "twin"
VERSION = "1.28.0"
VENDORED = Path("shared", "vendor", "micropython-%s-unix-src.tar.xz" % VERSION)
RELEASE = "https://micropython.org/resources/source/micropython-%s.tar.xz" % VERSION
MICROPYTHON = OUT / "micropython"
MPY_CROSS = OUT / "mpy-cross"
FROZEN = OUT / "micropython-frozen"
SIM_BUILD = "build-std32"  # the sim twin's build folder in the source's ports/unix
# what starts a boot (run boot.py, then main.py), in C on a board: frozen into both twins, run
# with -m, so that neither its names nor its path cost the heap
SIMBOOT = REPO / "tools" / "simboot.py"
# frozen into the twin, so that they cost the heap nothing: the simulated flash, pins and
# sensors stand in for what is C or frozen in an ESP32 image; the benchmark driver that runs
# the gates' telemetry cycles in main.py's place (bench/fw_device.py) is not on a board at all.
# Their names are in the twin's ROM then, so none may be one the firmware interns on a board
# (tests/twin/test_board.py reads both and checks)
SIM_FROZEN = [
    SIMBOOT,
    REPO / "firmware" / "board" / "partition_sim.py",
    REPO / "firmware" / "board" / "parts_sim.py",
    REPO / "bench" / "fw_device.py",
    REPO / "bench" / "fw_imports.py",
]
# as MicroPython's CI builds "unix 32-bit"; libffi and berkeley-db are not in the trimmed source
# (the PyPI unix build has neither). mbedTLS allocates from the C heap on this build, as from
# ESP-IDF's heap on a board: the GC heap holds only what MicroPython's own objects need.
FLAGS = ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0"]
# The names an ESP32 image holds in ROM (machine, network, its frozen modules: tools/
# esp32_qstrs.py) are in the twin's ROM too: a board does not intern them on its heap
ROM_NAMES = REPO / "tools" / "esp32_qstrs.h"
# and the twin's stand-ins: lib/ is at "lib" on its sys.path (tools/simdevice.py's TWIN_LIB),
# where a board's is "/lib"; the frozen stand-ins' module names, interned at their import, stand
# for a board's boot in C, its esp32 and machine modules, or are not on a board at all
STAND_IN_NAMES = "Q(lib)\n" + "".join("Q(%s)\n" % p.stem for p in SIM_FROZEN)
# The ESP32's socket.recv(n) reads into an n-byte buffer that becomes the bytes object, cut to
# what came (ports/esp32/modsocket.c:678-688, mp_obj_new_bytes_from_vstr); the unix port's
# reads into a scratch buffer and copies (ports/unix/modsocket.c:293-297), so it needs n plus a
# datagram's size at once. The twin reads as the board does.
_UNIX_RECV = """    byte *buf = m_new(byte, sz);
    ssize_t out_sz;
    MP_HAL_RETRY_SYSCALL(out_sz, recv(self->fd, buf, sz, flags), mp_raise_OSError(err));
    mp_obj_t ret = mp_obj_new_str_of_type(&mp_type_bytes, buf, out_sz);
    m_del(char, buf, sz);
    return ret;
"""
_BOARD_RECV = """    vstr_t vstr;  /* coapboard twin: as ports/esp32/modsocket.c reads */
    vstr_init_len(&vstr, sz);
    ssize_t out_sz;
    MP_HAL_RETRY_SYSCALL(out_sz, recv(self->fd, vstr.buf, sz, flags), mp_raise_OSError(err));
    vstr.len = out_sz;
    return mp_obj_new_bytes_from_vstr(&vstr);
"""


class TwinError(Exception):
    pass


def source():
    """The archive to build from: (path or URL, whether it must be downloaded)."""
    env = os.environ.get("MICROPYTHON_SRC")
    if env:
        if not Path(env).is_file():
            raise TwinError("MICROPYTHON_SRC=%s: no such file" % env)
        return Path(env)
    for top in _homes():
        if (top.parent / VENDORED).is_file():
            return top.parent / VENDORED
    dst = REPO / "build" / RELEASE.rsplit("/", 1)[1]
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        print("twin: downloading %s" % RELEASE, flush=True)
        try:
            urllib.request.urlretrieve(RELEASE, str(dst) + ".part")
        except OSError as e:
            raise TwinError("no %s (%s): set MICROPYTHON_SRC" % (RELEASE, e)) from None
        os.replace(str(dst) + ".part", dst)
    return dst


def _homes():
    # this checkout, and the local repository it was cloned from (a CI clone elsewhere)
    yield REPO
    p = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    )
    origin = Path(p.stdout.strip())
    if p.returncode == 0 and origin.is_absolute() and origin.is_dir():
        yield origin


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree(archive):
    """The unpacked source under OUT/src, unpacked again when the archive changed."""
    stamp = OUT / "source.sha256"
    digest = _digest(archive)
    src = OUT / "src"
    if stamp.is_file() and stamp.read_text() == digest and src.is_dir():
        return src, digest
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / "src.part"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as t:
        t.extractall(tmp, filter="data")
    (top,) = tmp.iterdir()  # micropython-1.28.0/
    top.rename(src)
    tmp.rmdir()
    stamp.write_text(digest)
    return src, digest


def _make(args, log):
    jobs = "-j%d" % (os.cpu_count() or 2)
    p = subprocess.run(["make", jobs] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode:
        tail = p.stdout.decode(errors="replace")[-3000:]
        raise TwinError("twin build failed (make %s):\n%s" % (" ".join(args), tail))
    log.write(p.stdout)


def build(frozen=False):
    """Build what is missing; -> the twin's micropython (the frozen one with frozen=True)."""
    src, digest = _tree(source())
    # the build is redone when the archive or how it is built changes
    recipe = hashlib.sha256((digest + repr(FLAGS) + _BOARD_RECV).encode()).hexdigest()
    stamp = OUT / "build.sha256"
    current = stamp.is_file() and stamp.read_text() == recipe
    with open(OUT / "build.log", "ab") as log:
        if not (current and MPY_CROSS.is_file()):
            print("twin: building MicroPython %s, 32-bit" % VERSION, flush=True)
            shutil.rmtree(src / "ports/unix" / SIM_BUILD, ignore_errors=True)
            _recv_as_the_board(src / "ports/unix/modsocket.c")
            (OUT / "sim.sha256").unlink(missing_ok=True)
            _make(["-C", str(src / "mpy-cross")], log)
            _install(src / "mpy-cross/build/mpy-cross", MPY_CROSS)
            stamp.write_text(recipe)
        frozen_in = "".join(_module(p) for p in SIM_FROZEN)
        _port(src, SIM_BUILD, "sim", SIM_FROZEN, frozen_in, MICROPYTHON, log)
        if frozen:
            # firmware/manifest.py includes the port's own manifest, by default the ESP32's
            # path: here the standard unix variant's (asyncio, ssl, ...), as its include option
            manifest = REPO / "firmware" / "manifest.py"
            inputs = [manifest] + sorted(REPO.glob("lib/*/*.py"))
            inputs += sorted(REPO.glob("firmware/**/*.py"))
            text = "include(%r, port_manifest=%r)\n" % (str(manifest), _STANDARD)
            text += _module(SIMBOOT)
            inputs.append(SIMBOOT)
            _port(src, "build-frozen32", "frozen", inputs, text, FROZEN, log, standard=False)
    return FROZEN if frozen else MICROPYTHON


_STANDARD = "$(PORT_DIR)/variants/standard/manifest.py"  # asyncio, ssl, ...


def _module(path):
    return "module(%r, base_path=%r)\n" % (path.name, str(path.parent))


def _recv_as_the_board(path):
    text = path.read_text()
    if _BOARD_RECV in text:
        return
    if _UNIX_RECV not in text:
        raise TwinError("%s: socket_recv is not the one the twin knows how to change" % path)
    path.write_text(text.replace(_UNIX_RECV, _BOARD_RECV))


def rom_names():
    """The names in the built twin's ROM (its qstr header): those it never interns."""
    h = OUT / "src" / "ports" / "unix" / SIM_BUILD / "genhdr" / "qstrdefs.generated.h"
    return set(re.findall(r'^QDEF[01]\(MP_QSTR_\w*, \d+, \d+, "(.*)"\)$', h.read_text(), re.M))


def _port(src, build_name, name, inputs, manifest, exe, log, standard=True):
    """The unix port built in build_name with `manifest` (text) frozen in, on top of the
    standard variant's, and the board's ROM names, into exe; redone when the inputs' contents
    change."""
    h = hashlib.sha256(repr(FLAGS).encode() + manifest.encode() + STAND_IN_NAMES.encode())
    for p in inputs + [ROM_NAMES]:
        h.update(p.read_bytes())
    stamp = OUT / (name + ".sha256")
    if exe.is_file() and stamp.is_file() and stamp.read_text() == h.hexdigest():
        return
    print("twin: building the %s twin" % name, flush=True)
    top = OUT / ("manifest-%s.py" % name)
    top.write_text(("include(%r)\n" % _STANDARD if standard else "") + manifest)
    # makemanifest goes by timestamps, which miss a removed module or a file older than the last
    # build: the frozen code is made anew from the inputs whose hash changed
    build = src / "ports/unix" / build_name
    shutil.rmtree(build / "frozen_mpy", ignore_errors=True)
    (build / "frozen_content.c").unlink(missing_ok=True)
    args = ["BUILD=%s" % build_name, "FROZEN_MANIFEST=%s" % top]
    stand_ins = OUT / "stand_in_qstrs.h"
    stand_ins.write_text(STAND_IN_NAMES)
    # the port's own names, the board's and the stand-in
    args.append("QSTR_DEFS=qstrdefsport.h %s %s" % (ROM_NAMES, stand_ins))
    _make(["-C", str(src / "ports/unix")] + args + FLAGS, log)
    _install(build / "micropython", exe)
    stamp.write_text(h.hexdigest())


def _install(built, dst):
    # replace, not overwrite: a twin that is running keeps its file
    shutil.copy(built, str(dst) + ".new")
    os.replace(str(dst) + ".new", dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frozen", action="store_true", help="also the frozen firmware twin")
    a = ap.parse_args()
    try:
        build()
        if a.frozen:
            build(frozen=True)
    except TwinError as e:
        sys.exit("twin: %s" % e)
    for p in (MICROPYTHON, MPY_CROSS) + ((FROZEN,) if a.frozen else ()):
        print(p.relative_to(REPO))


if __name__ == "__main__":
    main()
