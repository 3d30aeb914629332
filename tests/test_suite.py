"""Suite validation: every error names the file and field, exits 2, in one line, before training."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD = """\
name: ok
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [student-only, kd]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
"""


def mutate(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


CASES = {
    "unknown task": (mutate("[digits]", "[digitz]"),
                     ["tasks[0].name", "unknown task 'digitz'", "did you mean 'digits'"]),
    "unknown teacher": (mutate("teacher: hinton-mlp-1200", "teacher: hinton-mlp-120"),
                        ["pairs[0].teacher", "did you mean 'hinton-mlp-1200'"]),
    "unknown student": (mutate("student: mlp-30", "student: mlp-3O"), ["pairs[0].student", "did you mean 'mlp-30'"]),
    "unknown method": (mutate("student-only, kd]", "student-only, kdd]"), ["methods[1].name", "unknown method 'kdd'",
                                                                          "did you mean 'kd'", "known:"]),
    "unknown method parameter": (mutate("student-only, kd]", "student-only, {name: kd, params: {tau: 2}}]"),
                                 ["methods[1].params", "parameter of method kd 'tau'"]),
    "parameter of wrong type": (mutate("student-only, kd]", "student-only, {name: kd, params: {T: hot}}]"),
                                ["methods[1].params.T", "expected a number, got 'hot'"]),
    "zero temperature": (mutate("student-only, kd]", "student-only, {name: kd, params: {T: 0}}]"),
                         ["methods[1].params", "T must be positive"]),
    "grid with no values": (mutate("student-only, kd]", "student-only, {name: kd, grid: {T: []}}]"),
                            ["methods[1].grid.T", "non-empty list"]),
    "seeds of wrong type": (mutate("seeds: 1", "seeds: three"), ["seeds", "(got 'three')"]),
    "zero seeds": (mutate("seeds: 1", "seeds: 0"), ["seeds", "a count in 1..1000"]),
    "negative epochs": (mutate("teacher: {epochs: 1}", "teacher: {epochs: -3}"),
                        ["recipe.teacher.epochs", "greater than 0", "(got -3)"]),
    "absurd epochs": (mutate("teacher: {epochs: 1}", "teacher: {epochs: 1000000000}"), ["recipe.teacher.epochs"]),
    "unknown recipe field": (mutate("student: {epochs: 1}", "student: {epoch: 1}"),
                             ["recipe.student", "unknown recipe field 'epoch'", "did you mean 'epochs'"]),
    "unknown top-level field": (GOOD + "seed: 3\n", ["seed", "unknown field 'seed'; did you mean 'seeds'?"]),
    "unknown tune field": (GOOD + "tune: {trails: 3}\n", ["tune.trails", "did you mean 'trials'?"]),
    "bad trial count": (GOOD + "tune: {trials: 0}\n", ["tune.trials", "greater than or equal to 1"]),
    "missing pairs": (mutate("pairs:\n  - {teacher: hinton-mlp-1200, student: mlp-30}\n", ""),
                      ["suite", "needs 'tasks', 'pairs' and 'methods'"]),
    "missing student": (mutate("{teacher: hinton-mlp-1200, student: mlp-30}", "{teacher: hinton-mlp-1200}"),
                        ["pairs[0].student", "Field required"]),
    "unknown task option": (mutate("[digits]", "[{name: digits, options: {split_sead: 1}}]"),
                            ["tasks[0].options", "did you mean 'split_seed'"]),
    "duplicate key": (GOOD + "seeds: 2\n", ["duplicate key 'seeds'", ":10:"]),
    "invalid yaml": (mutate("methods: [student-only, kd]", "methods: [student-only, kd"), ["invalid YAML"]),
    "not a mapping": ("- just\n- a list\n", ["expected a mapping of suite fields, got list"]),
    "bad suite name": (mutate("name: ok", "name: ../../etc/passwd"), ["name", "should match pattern"]),
    "unknown paper anchor field": (GOOD + "paper:\n  - {task: digits, method: kd, value: 0.9, withn: 0.01}\n",
                                   ["paper[0].withn", "unknown field 'withn'; did you mean 'within'?"]),
    "paper direction not better-than": (
        GOOD + "paper:\n  - {task: digits, method: kd, direction: beats student-only}\n",
        ["paper[0].direction", "expected 'better-than METHOD'", "'beats student-only'"]),
    "paper within with nothing to be near": (GOOD + "paper:\n  - {task: digits, method: kd, within: 0.01}\n",
                                             ["paper[0]", "'within' needs the paper's 'value', or 'of'"]),
    "paper anchor without value or claim": (GOOD + "paper:\n  - {task: digits, method: kd}\n",
                                            ["paper[0]", "needs the paper's 'value' or a claim"]),
    "paper anchor on a method not run": (
        GOOD + "paper:\n  - {task: digits, method: kd, direction: better-than studnt-only}\n",
        ["paper[0].direction", "unknown method of this suite 'studnt-only'", "did you mean 'student-only'?"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_invalid_suite_is_one_line_naming_file_and_field(case, cli, isolated: Path):
    text, expected = CASES[case]
    path = isolated / "suite.yaml"
    path.write_text(text)
    code, out, err = cli("run", path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"kdbench: error: {path}"), lines[0]
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in err + out
    assert not (isolated / "mlflow.db").exists(), "nothing may be tracked for an invalid suite"


def test_the_good_suite_validates(isolated: Path):
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    path = isolated / "suite.yaml"
    path.write_text(GOOD)
    suite = load_suite(path, Registry.load())
    assert suite.seeds == [0]
    assert [m.name for m in suite.all_cases()[0].methods] == ["student-only", "kd"]


def test_missing_suite_file_and_unknown_suite_name(cli):
    code, _, err = cli("run", "nowhere.yaml")
    assert code == 2 and "nowhere.yaml: no such suite file" in err
    code, _, err = cli("run", "quickstrat")
    assert code == 2 and "unknown suite 'quickstrat'; did you mean 'quickstart'?" in err


def test_grid_expands_to_cartesian_product():
    from kdbench.suite import MethodEntry

    entry = MethodEntry(name="kd", params={"alpha": 0.5}, grid={"T": [1, 2], "x": ["a", "b", "c"]})
    points = entry.points()
    assert len(points) == 6
    assert all(p["alpha"] == 0.5 for p in points)
    assert {(p["T"], p["x"]) for p in points} == {(t, x) for t in (1, 2) for x in "abc"}


def test_every_shipped_suite_validates():
    from kdbench.cli import known_suites, resolve_suite
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load()
    names = known_suites()
    assert {"quickstart", "smoke", "hinton-mnist"} <= set(names)
    for name in names:
        load_suite(resolve_suite(name), registry)


def test_paper_claims_parse_into_their_checks(isolated: Path):
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    path = isolated / "suite.yaml"
    path.write_text(GOOD + "paper:\n"
                    "  - {task: digits, method: teacher, value: 0.97, within: 0.02}\n"
                    "  - {task: digits, method: kd, direction: better-than student-only, gap_closed: 0.5}\n"
                    "  - {task: digits, method: kd, within: 0.015, of: teacher}\n")
    within, better, near = load_suite(path, Registry.load()).paper
    assert (within.value, within.within, within.claimed) == (0.97, 0.02, True)
    assert (better.value, better.better_than, better.gap_closed) == (None, "student-only", 0.5)
    assert (near.of, near.within) == ("teacher", 0.015)
    path.write_text(GOOD + "paper:\n  - {task: digits, method: kd, value: 0.9}\n")
    assert not load_suite(path, Registry.load()).paper[0].claimed  # a number to show, no claim
