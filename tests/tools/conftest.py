# Fixtures for the maker/technician tools: a "board" that is the MicroPython unix port behind a
# socat pty (mpremote reaches it with resume: a soft reset would end the unix port), whose
# filesystem is a folder here, with the simulated board layer (network.json etc. in that
# folder); tbsim in-process.
import shutil

import pytest
from toolsupport import UnixBoard

from tests.e2e.conftest import start_sim
from tools import deploy
from tools.link import Link


@pytest.fixture(scope="session")
def deployed(tmp_path_factory, mpy_dir):
    """A board filesystem with the firmware deployed (no config): a template to copy."""
    b = UnixBoard(tmp_path_factory.mktemp("deployed") / "root")
    link = Link(b.port, resume=True)
    try:
        files = deploy.collect(link.info(), out=mpy_dir)
        deploy.deploy(link, files, log=lambda *a: None)
    finally:
        link.close()
        b.stop()
    return b.root


@pytest.fixture
def unix_board(tmp_path, request):
    """unix_board(name="board", deployed=False, boot=False) starts one, its filesystem empty or
    with the firmware deployed already, boot: running boot.py and main.py at power on; all
    are stopped at teardown."""
    boards = []

    def start(name="board", deployed=False, boot=False):
        if deployed:
            shutil.copytree(request.getfixturevalue("deployed"), tmp_path / name)
        b = UnixBoard(tmp_path / name, boot=boot)
        boards.append(b)
        return b

    yield start
    for b in boards:
        b.stop()


@pytest.fixture(scope="session")
def mpy_dir(tmp_path_factory):
    """The firmware compiled once for the session (deploy.build's output folder)."""
    out = tmp_path_factory.mktemp("mpy")
    deploy.build(out=out)
    return out


@pytest.fixture
def sim(tmp_path):
    s = start_sim(tmp_path / "tbsim")
    yield s
    s.stop()
