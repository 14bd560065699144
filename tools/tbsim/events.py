# events.py: one console line per event, with access tokens masked.
import sys
import time


def mask(token):
    # Enough of the token to tell devices apart in a log, not enough to use it.
    if not token:
        return "-"
    return token[:4] + "…"


def short(payload, limit=60):
    if payload is None:
        return ""
    if isinstance(payload, (bytes, bytearray)):
        try:
            text = bytes(payload).decode()
        except UnicodeDecodeError:
            return "<%d bytes>" % len(payload)
    else:
        text = str(payload)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def say(line, stream=None):
    # one line in one write: print writes the newline apart, and a line that another thread or
    # the device's process writes in between would land inside this one
    stream = stream or sys.stdout
    stream.write(line + "\n")
    stream.flush()


class EventLog:
    def __init__(self, stream=None, enabled=True):
        self.stream = stream or sys.stdout
        self.enabled = enabled

    def line(self, *fields):
        if not self.enabled:
            return
        stamp = time.strftime("%H:%M:%S")
        text = " ".join(str(f) for f in fields if f != "")
        say("%s %s" % (stamp, text), self.stream)
