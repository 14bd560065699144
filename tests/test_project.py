# The project's conventions, as a newcomer meets them: documents whose links stay inside the
# repository and reach their files and headings, a short README, tables that render, tools that
# explain themselves (make help, the variables a target lacks, micropython -m coap -h), one
# version, a CI workflow that runs make test, git-ignored data folders, and a sample config
# that runs on the simulation without an error line.
import json
import os
import re
import subprocess
import sys

import pytest

from firmware import config as fwconfig
from tests.e2e.conftest import Firmware, start_sim, until
from tests.mpenv import MICROPYTHON, ROOT, micropython_env

TEXT = {"capture_output": True, "text": True, "timeout": 60}
SKIP = {".git", ".venv", "build", "data", "tbsim-data", ".pytest_cache", ".hypothesis"}


def markdown_files():
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not SKIP & set(p.relative_to(ROOT).parts) and "node_modules" not in p.parts
    )


def prose(path):
    """(line number, line) outside fenced code blocks, inline code spans blanked."""
    fence = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence:
            yield n, re.sub(r"`[^`]*`", "``", line)


def slug(heading):
    # GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lstrip("#").strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    fence, out = False, set()
    for line in path.read_text().splitlines():
        fence ^= line.lstrip().startswith("```")
        if not fence and line.startswith("#"):
            out.add(slug(line))
    return out


LINK = re.compile(
    r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<(\w+:[^>\s]+)>|^\[[^\]]+\]:\s*(\S+)"
)


def links(path):
    for n, line in prose(path):
        for m in LINK.finditer(line):
            yield n, next(g for g in m.groups() if g)


def test_the_readme_is_a_first_screen_not_a_manual():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    head = "\n".join(lines[:25])
    assert "make run" in head and "make test" in head


def test_every_markdown_link_stays_in_the_repository_and_reaches_its_target():
    # web addresses a reader needs (MicroPython's download page) are text, not links
    files = markdown_files()
    assert ROOT / "docs" / "design.md" in files and ROOT / "firmware" / "CONFIG.md" in files
    bad = []
    for md in files:
        where = md.relative_to(ROOT)
        for n, target in links(md):
            if ":" in target.split("/")[0]:  # a web page or any other scheme
                bad.append("%s:%d: %s: leaves the repository" % (where, n, target))
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.is_relative_to(ROOT):
                bad.append("%s:%d: %s: outside the repository" % (where, n, target))
            elif not dest.exists():
                bad.append("%s:%d: %s: no such file" % (where, n, target))
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append("%s:%d: %s: no such heading" % (where, n, target))
    assert not bad, "\n".join(bad)


def test_no_document_points_at_team_only_places():
    for md in markdown_files():
        text = md.read_text()
        for place in ("../shared", "/work/", "reference/thingsboard-coap-transport"):
            assert place not in text, "%s mentions %s" % (md.relative_to(ROOT), place)


SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")


def cells(row):
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


def test_every_table_renders():
    # a table is a header row, a separator row, then rows of as many cells; a row anywhere
    # else (after a blank line or a paragraph) shows as text with pipes
    bad = []
    for md in markdown_files():
        block = []
        for n, line in list(prose(md)) + [(0, "")]:
            if line.startswith("|"):
                block.append((n, line))
                continue
            if block:
                (n0, head), rows = block[0], block[1:]
                if not rows or not SEPARATOR.match(rows[0][1].strip()):
                    bad.append("%s:%d: table rows without a header" % (md.relative_to(ROOT), n0))
                else:
                    bad += [
                        "%s:%d: %d cells, the header has %d"
                        % (md.relative_to(ROOT), r, cells(row), cells(head))
                        for r, row in rows
                        if cells(row) != cells(head)
                    ]
            block = []
    assert not bad, "\n".join(bad)


def make(*args):
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def phony_targets():
    text = (ROOT / "Makefile").read_text()
    return re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()


def test_make_help_lists_every_target_one_line_each():
    p = make("help")
    assert p.returncode == 0, p.stderr
    listed = [line.split()[0] for line in p.stdout.splitlines()[1:]]
    assert sorted(listed) == sorted(phony_targets())
    assert all(len(line.split()) > 2 for line in p.stdout.splitlines()[1:]), p.stdout
    assert make().stdout == p.stdout  # plain `make` says the same


@pytest.mark.parametrize(
    "args, missing",
    [
        (["flash"], "PORT=<the board's serial port, e.g. /dev/ttyUSB0>"),
        (["flash", "PORT=/dev/ttyUSB0"], "FIRMWARE="),
        (["deploy"], "PORT="),
        (["hwtest", "PORT=/dev/ttyUSB0", "SSID=w"], "FIRMWARE=<the OTA image the board runs"),
        (["provision"], "PORT="),
        (["provision", "PORT=/dev/ttyUSB0"], "SERVER="),
        (["provision", "PORT=/dev/ttyUSB0", "SERVER=tb", "SSID=w"], "TOKEN="),
        (["provision", "PORT=/dev/ttyUSB0", "SERVER=tb", "SSID=w", "KEY=k"], "SECRET="),
        (
            ["provision", "PORT=/dev/ttyUSB0", "CSV=boards.csv"],
            "ROW=<a device name in boards.csv>",
        ),
    ],
)
def test_a_make_target_names_the_variable_it_lacks(args, missing):
    p = make(*args)
    assert p.returncode == 2
    assert "*** make %s needs %s" % (args[0], missing) in p.stderr, p.stderr
    assert "tools." not in p.stdout  # stopped before anything ran


def test_make_echoes_no_multi_line_recipe():
    lines = (ROOT / "Makefile").read_text().splitlines()
    for i, line in enumerate(lines):
        starts = line.startswith("\t") and not lines[i - 1].endswith("\\")
        if starts and line.endswith("\\"):
            assert line.startswith("\t@"), "Makefile:%d echoes a multi-line recipe" % (i + 1)


def test_make_deploy_checks_the_config_before_looking_for_the_board(tmp_path):
    cfg = tmp_path / "mine.json"
    cfg.write_text(json.dumps({"server": {"host": "tb", "port": 0}, "token": "T"}))
    p = make("deploy", "PORT=%s" % (tmp_path / "ttyUSB0"), "CONFIG=%s" % cfg)
    assert p.returncode == 2
    assert "deploy: config %s:\n  server.port: expected an integer 1-65535, got 0\n" % cfg in (
        p.stdout
    )


def coap_cli(*args):
    return subprocess.run(
        [str(MICROPYTHON), "-m", "coap", *args],
        capture_output=True, text=True, timeout=30, env=micropython_env(),
    )  # fmt: skip


def test_the_coap_cli_prints_its_usage():
    p = coap_cli("-h")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("usage: micropython -m coap [options] URI")
    flags = re.findall(r'"(-\w)"', (ROOT / "lib" / "coap" / "__main__.py").read_text())
    assert len(set(flags)) >= 16
    for flag in set(flags) - {"-h"}:  # every flag the parser knows is explained
        assert re.search(r"(^|\s|\()%s\b" % flag, p.stdout), flag
    assert coap_cli("--help").stdout == p.stdout
    p = coap_cli()
    assert (p.returncode, p.stdout) == (2, "error: no URI given (-h: usage)\n")


def test_the_host_tools_load_as_a_user_runs_them():
    # plain CPython, without the tests' stand-in for MicroPython's micropython module
    # (tests/micropython.py): the device modules a tool or benchmark reads (the spool, the
    # simulated flash, the codec) must import there on their own
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tools = sorted(p.stem for p in (ROOT / "tools").glob("*.py") if p.stem != "simboot")
    code = "import importlib\nfor m in %r:\n    importlib.import_module('tools.' + m)\n"
    p = subprocess.run([sys.executable, "-c", code % tools], cwd=ROOT, env=env, **TEXT)
    assert p.returncode == 0, p.stderr
    for script in ("uplink.py", "ota_run.py", "fw_run.py", "twin_heap.py"):
        argv = [sys.executable, str(ROOT / "bench" / script), "--help"]
        p = subprocess.run(argv, env=env, **TEXT)
        assert p.returncode == 0 and p.stdout.startswith("usage:"), (script, p.stderr)


def test_the_version_is_in_one_place():
    version = fwconfig.VERSION
    assert json.loads((ROOT / "package.json").read_text())["version"] == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.M).group(1) == version
    defaults = fwconfig.defaults()["firmware"]
    assert defaults["version"] == defaults["app_version"] == version
    assert json.loads((ROOT / "config.json").read_text())["firmware"]["version"] == version


def test_ci_runs_make_test():
    workflows = list((ROOT / ".github" / "workflows").glob("*.yml"))
    assert [w.name for w in workflows] == ["test.yml"]
    text = workflows[0].read_text()
    assert re.search(r"^\s+run: \.ci/run$", text, re.M) and "pull_request" in text
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\nmake test")


def test_what_tbsim_and_make_run_keep_is_git_ignored():
    paths = ["data/tbsim/tbsim.db", "data/device/config.json", "tbsim-data/tbsim.db"]
    p = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert p.stdout.split() == paths, p.stderr


def test_the_sample_config_runs_on_the_simulation_without_an_error(tmp_path):
    # the repository's config.json as it is, pointed at tbsim: every sensor it lists reports
    cfg = json.loads((ROOT / "config.json").read_text())
    sim = start_sim(tmp_path / "tbsim")
    try:
        dev = sim.create_device("greenhouse-01", token=cfg["token"])
        cfg["server"].update(host="127.0.0.1", port=sim.coap_port)
        root = tmp_path / "device"
        root.mkdir()
        (root / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(root)
        try:
            keys = {"chip_temp", "soil", "soil_raw", "air_temperature", "air_humidity"}
            keys |= {"water_temp", "level"}
            until(lambda: keys <= set(sim.telemetry(dev["id"])), 30, "every sensor's reading")
            assert fw.running()
        finally:
            fw.stop()
        out = fw.output()
        assert not [x for x in out.splitlines() if x.startswith("E ")], out
        assert "Traceback" not in out and "_error" not in str(sim.telemetry(dev["id"])), out
    finally:
        sim.stop()
