# log.py: levelled console logging for the firmware. One line per event, "level module: text";
# below the configured level nothing is formatted at all.

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
level = 20  # the configured one


def set_level(name):
    global level
    level = LEVELS[name]


class Log:
    def __init__(self, name):
        self.name = name

    def _out(self, at, args):
        if at >= level:
            # one write, newline included: print writes each argument and its end on their
            # own, and a line cut by another process's output on the same console is lost
            mark = "DIWE"[at // 10 - 1]  # D, I, W or E, by the level
            print(" ".join([mark, self.name + ":"] + [str(a) for a in args]) + "\n", end="")

    def debug(self, *args):
        self._out(10, args)

    def info(self, *args):
        self._out(20, args)

    def warning(self, *args):
        self._out(30, args)

    def error(self, *args):
        self._out(40, args)
