# The board's entry files, boot.py and main.py, as MicroPython's ESP32 port runs them: boot.py on
# every soft reset, then main.py; an exception main.py does not catch leaves the board at the
# REPL (ports/esp32/main.c, the soft_reset loop: pyexec_file_if_exists("main.py"), then the
# REPL, no reset). On the simulated board (firmware/board/sim.py) reset() ends the process with
# EXIT_RESET, which is what these cases expect where the firmware must reset.
import os
import sys

ROOT = __file__.rsplit("/", 3)[0]
sys.path.insert(0, ROOT)

import fakes  # noqa: E402

import firmware  # noqa: E402
from firmware.board import parts_sim, sim  # noqa: E402

_dir = fakes.scratch_dir("mp_boot")


def scratch():
    fakes.empty(_dir)
    os.putenv("COAPBOARD_ROOT", _dir)
    return sim.Board(_dir)


class FailingApp:
    # stands in for firmware.app: the firmware raises before it runs
    runs = 0

    @staticmethod
    def run():
        FailingApp.runs += 1
        raise RuntimeError("boom %d" % FailingApp.runs)


def run_main(app):
    # main.py as the board runs it, with `app` as firmware.app -> the SystemExit status
    sys.modules["firmware.app"] = app
    firmware.app = app
    try:
        from firmware import crash

        crash.DELAY_MS = 0  # no wait in a test
    except ImportError:  # before main.py had one
        pass
    try:
        with open(ROOT + "/main.py") as f:
            exec(f.read(), {"__name__": "__main__"})
    except SystemExit as e:
        return e.args[0]
    finally:
        sys.modules.pop("firmware.app", None)
        del firmware.app
    return None


def test_an_uncaught_error_in_main_is_kept_for_the_next_boot_and_the_board_resets():
    b = scratch()
    FailingApp.runs = 0
    assert run_main(FailingApp) == parts_sim.EXIT_RESET  # not left silent at the REPL
    with open(b.path("last_error")) as f:
        assert "boom 1" in f.read()


def test_an_app_on_trial_that_cannot_start_rolls_back_and_the_previous_one_runs():
    b = scratch()
    os.mkdir(b.path("apps"))
    with open(b.path("apps/slot.json"), "w") as f:
        f.write('{"run": "a", "prev": "", "state": "trying"}')
    here = os.getcwd()
    os.chdir(_dir)  # the board's root is its current folder
    try:
        # the factory slot runs instead: this root has no config.json, so it stops there
        assert run_main(FailingApp) is None
    finally:
        os.chdir(here)
    from ota import appslot

    st = appslot.read(_dir + "/")
    assert (st["run"], st["state"], st["aborted"]) == ("", "valid", "a")


def run_boot(b, cause):
    # boot.py after a reset of this cause (sim.Board reads it from reset_cause) -> slot.json
    with open(b.path("reset_cause"), "w") as f:
        f.write(cause)
    here = os.getcwd()
    os.chdir(_dir)
    try:
        with open(ROOT + "/boot.py") as f:
            exec(f.read(), {"__name__": "__main__"})
    finally:
        os.chdir(here)
        sys.path[:] = [p for p in sys.path if not p.startswith("apps/")]
    from ota import appslot

    return appslot.read(_dir + "/")


def test_a_soft_reset_neither_ends_nor_starts_a_trial():
    # boot.py runs again on Ctrl-D and whenever mpremote enters the raw REPL (a deploy), with
    # no bootloader in between (ports/esp32/main.c: soft_reset runs boot.py)
    b = scratch()
    os.mkdir(b.path("apps"))
    with open(b.path("apps/slot.json"), "w") as f:
        f.write('{"run": "a", "prev": "", "state": "new"}')
    assert run_boot(b, "soft_reset")["state"] == "new"  # installed, not yet booted
    assert run_boot(b, "hard_reset")["state"] == "trying"
    st = run_boot(b, "soft_reset")
    assert (st["run"], st["state"]) == ("a", "trying")  # the trial goes on
    st = run_boot(b, "power_on")  # a real boot, and still not confirmed: back it goes
    assert (st["run"], st["state"], st["aborted"]) == ("", "valid", "a")


def test_a_module_let_go_stays_gone_even_when_its_package_loads_names_on_demand():
    # coap's __getattr__ imports a submodule it is asked for: drop() must not ask
    import coap

    firmware.use("coap.uri", lambda m: m.uri_options)
    assert "coap.uri" not in sys.modules and "uri" not in coap.__dict__
    firmware.drop("coap.uri")  # again, as an update's forget() may
    assert "coap.uri" not in sys.modules and "uri" not in coap.__dict__
