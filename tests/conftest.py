# Device tests: tests/device/mp_*.py run inside the MicroPython unix port (one process per
# module, via tests/device/runner.py); each test_* function there is one pytest item.
import ast
import json
import subprocess

import pytest
from mpenv import MICROPYTHON, ROOT, micropython_env

DEVICE = ROOT / "tests" / "device"


def _device_module(file_path):
    return (
        file_path.parent == DEVICE
        and file_path.name.startswith("mp_")
        and file_path.suffix == ".py"
    )


def pytest_collect_file(parent, file_path):
    # a file named on the command line comes through pytest_pycollect_makemodule instead
    if _device_module(file_path) and not parent.session.isinitpath(file_path):
        return DeviceModule.from_parent(parent, path=file_path)


def pytest_pycollect_makemodule(module_path, parent):
    # `pytest tests/device/mp_client.py[::case]`: not a CPython module
    if _device_module(module_path):
        return DeviceModule.from_parent(parent, path=module_path)


class DeviceModule(pytest.File):
    def collect(self):
        self._results = None
        tree = ast.parse(self.path.read_text())
        self._cases = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")
        ]
        return [DeviceCase.from_parent(self, name=name) for name in self._cases]

    def results(self):
        if self._results is None:
            cases = self._cases
            p = subprocess.run(
                [str(MICROPYTHON), str(DEVICE / "runner.py"), str(self.path)] + cases,
                capture_output=True,
                text=True,
                timeout=300,
                env=micropython_env(DEVICE),
            )
            self._results = {}
            for line in p.stdout.splitlines():
                if line.startswith("@@"):
                    r = json.loads(line[2:])
                    self._results[r["case"]] = r
            self._output = p.stdout + p.stderr
        return self._results


class DeviceFailure(Exception):
    pass


class DeviceCase(pytest.Item):
    def runtest(self):
        r = self.parent.results().get(self.name)
        if r is None:
            raise DeviceFailure("case did not report; MicroPython output:\n" + self.parent._output)
        if not r["ok"]:
            raise DeviceFailure(r["error"])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, DeviceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, "micropython: %s" % self.name
