# log.py: levelled console logging for the firmware. One line per event, "level module: text";
# below the configured level nothing is formatted at all.

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_level = 20


def set_level(name):
    global _level
    _level = LEVELS[name]


class Log:
    def __init__(self, name):
        self.name = name

    def _out(self, level, tag, args):
        if level >= _level:
            # one write, newline included: print writes each argument and its end on their
            # own, and a line cut by another process's output on the same console is lost
            print(" ".join([tag, self.name + ":"] + [str(a) for a in args]) + "\n", end="")

    def debug(self, *args):
        self._out(10, "D", args)

    def info(self, *args):
        self._out(20, "I", args)

    def warning(self, *args):
        self._out(30, "W", args)

    def error(self, *args):
        self._out(40, "E", args)
