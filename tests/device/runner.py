# runner.py: runs test cases of one device test module inside the MicroPython unix port and
# prints one "@@{json}" line per case for pytest (tests/conftest.py) to pick up.
# Usage: micropython runner.py path/to/mp_module.py case [case ...]
import asyncio
import io
import json
import sys
from asyncio import core


def main():
    path = sys.argv[1]
    d, _, name = path.rpartition("/")
    sys.path.insert(0, d or ".")
    mod = __import__(name[:-3])
    ticks = core.ticks
    for case in sys.argv[2:]:
        asyncio.new_event_loop()
        result = {"case": case, "ok": True}
        try:
            r = getattr(mod, case)()
            if type(r).__name__ == "generator":
                asyncio.run(r)
        except Exception as e:
            out = io.StringIO()
            sys.print_exception(e, out)
            result = {"case": case, "ok": False, "error": out.getvalue()}
        finally:
            core.ticks = ticks  # undo a virtual clock
        print("@@" + json.dumps(result))


main()
