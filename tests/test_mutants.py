# tests/mutants.py itself (`make mutants` runs the list): a stale or ambiguous line stops it
# before anything runs, fuzz tests do not count, and a mutant that the named test misses is
# reported as survived with a failing exit status.
import mutants
from mutants import Mutant

CONFIG = "firmware/config.py"
SHARED = 'elif use != "bus" or first[1] != "bus":'
REFUSED = "tests/test_config.py::test_bad_config_problems[1-Wire bus on a gpio output]"


def test_check_reports_stale_ambiguous_fuzz_and_repeated_entries():
    listed = [
        Mutant("gone", CONFIG, "no such line", "x", [REFUSED]),
        Mutant("twice", CONFIG, "return", "x", [REFUSED]),
        Mutant("luck", CONFIG, SHARED, "else:", ["tests/fuzz/test_device_fuzz.py::test_x"]),
        Mutant("ok", CONFIG, SHARED, "else:", [REFUSED]),
        Mutant("ok", CONFIG, SHARED, "else:", [REFUSED]),
    ]
    problems = mutants.check(listed)
    assert len(problems) == 4, problems
    assert "gone: firmware/config.py: 'no such line' not found" in problems[0]
    assert problems[1].startswith("twice:") and "found" in problems[1]
    assert problems[2].startswith("luck: needs deterministic tests")
    assert problems[3] == "ok: listed twice"


def test_stale_list_stops_the_run(monkeypatch, capsys):
    monkeypatch.setattr(mutants, "MUTANTS", [Mutant("gone", CONFIG, "no such line", "", [])])
    assert mutants.main([]) == 2
    assert "no longer matches the code" in capsys.readouterr().out


def test_caught_and_survived(monkeypatch, capsys):
    and_ = 'elif use != "bus" and first[1] != "bus":'
    monkeypatch.setattr(
        mutants,
        "MUTANTS",
        [
            Mutant("caught", CONFIG, SHARED, and_, [REFUSED]),
            Mutant("missed", CONFIG, SHARED, and_, ["tests/test_config.py::test_mask"]),
        ],
    )
    assert mutants.main(["-j", "1"]) == 1
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()[1:3]] == [
        ["caught", "caught"],
        ["SURVIVED", "missed"],
    ]
    assert "mutation score: 1 of 2 caught (50 %)" in out
    assert mutants.main(["caught"]) == 0
