# firmware: the product's application. Code is loaded into RAM on an official image, so what
# runs only now and then (the config schema at boot, the update slots, a download) is imported
# for the job and forgotten after it: use(), or loaded() ... forget() around a longer job.
import gc
import json
import os
import sys


def loaded():
    return set(sys.modules)


def forget(before):
    # drop every module imported since loaded() returned `before`
    drop(*[name for name in sys.modules if name not in before])


def drop(*names):
    # let these modules go: their RAM goes back to the heap once nothing else holds them
    for name in names:
        sys.modules.pop(name, None)  # maybe gone already: an update's forget() takes all it saw
        parent, _, child = name.rpartition(".")
        p = sys.modules.get(parent)
        if p is not None and child in p.__dict__:  # hasattr: coap's __getattr__ would import it
            delattr(p, child)
    # collect now: the freed code leaves one large free block, which what comes next fills in
    # order, instead of a hole that scattered small objects later split up
    gc.collect()


def use(name, job):
    # -> job(module name), with the module and what it imports gone again afterwards
    before = loaded()
    try:
        return job(__import__(name, None, None, ("_",)))
    finally:
        forget(before)


def crc_file(path, buf, crc=0):
    # the CRC-32 of a file (after crc), read through buf
    from binascii import crc32

    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return crc
            crc = crc32(memoryview(buf)[:n], crc)


def save_json(path, value):
    # the file replaced whole (a temporary one, renamed): a power cut leaves the old or the new
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.rename(path + ".tmp", path)
