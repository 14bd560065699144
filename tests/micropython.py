# micropython.py: what device code imports from MicroPython's built-in micropython module, for
# the tests that run it under CPython (tests/ is on their sys.path; on MicroPython the built-in
# module comes first). const() marks a constant that mpy-cross folds in: a private one
# (_NAME) takes no name on the board's heap.


def const(value):
    return value
