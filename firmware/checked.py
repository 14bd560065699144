# checked.py: the settings as config.py checked them, kept beside config.json (NAME) with a
# stamp of what they came from. A boot whose config.json, protobuf schema file, checker and
# chip are those of the stamp runs with the kept settings and never loads the checker: its code
# (18.8 KB) and its names, which stay interned for good once a module brings them (start.py).
import json
import sys
from binascii import crc32

from . import crc_file, save_json

NAME = "config.checked.json"


def kept(board):
    # -> (the kept settings, or None when they are missing, unreadable or stale; the reset
    # cause a restart for them left, given once)
    try:
        with open(board.path(NAME)) as f:
            k = json.load(f)
        cause = k.pop("cause", None)
        cfg = k["config"]
        if k["stamp"] != stamp(board, cfg):
            return None, cause
        if cause:
            save_json(board.path(NAME), k)
        return cfg, cause
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None


def keep(board, cfg, cause=None):
    # cfg: what config.load returned for this board's files; cause: the reset cause of the boot
    # that restarts for them -> whether they are kept
    try:
        k = {"stamp": stamp(board, cfg), "config": cfg}
        if cause:
            k["cause"] = cause
        save_json(board.path(NAME), k)
        return True
    except OSError:
        return False


def stamp(board, cfg):
    server = cfg["server"]
    schema = server["payload"] == "protobuf" and _crc(board.path(server["schema"]))
    return [_crc(board.path("config.json")), schema, _checker(), board.chip]


def _checker():
    # config.py and chips.py beside this module, compiled or not; frozen in, the image's build
    folder, ext = __file__.rpartition("/")[0], __file__.rpartition(".")[2]
    try:
        return _crc("%s/chips.%s" % (folder, ext), _crc("%s/config.%s" % (folder, ext)))
    except OSError:
        return crc32(sys.version.encode())


def _crc(path, crc=0):
    return crc_file(path, bytearray(256), crc)
