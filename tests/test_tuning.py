"""kdbench tune: one budget for every method, scored on val only, resumable after a kill, and runs at the
chosen values that carry them in their config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, write_suite

PLUGIN = str(REPO / "tests" / "tuning_plugin.py")
SUITE = """
name: bowls
seeds: 2
tasks: [bowl]
pairs:
  - {{student: carrier}}
methods: [bowl, bowl-far]
tune: {{trials: {trials}}}
"""


def optuna_trials(work: Path) -> dict[str, list]:
    import optuna

    storage = f"sqlite:///{work / 'optuna.db'}"
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials()
            for s in optuna.get_all_study_summaries(storage)}


def test_every_method_gets_the_same_budget_defaults_first_and_the_sampler_finds_the_optimum(cli, isolated: Path):
    suite = write_suite(isolated / "bowls.yaml", SUITE.format(trials=20))
    code, out, err = cli("tune", suite, "--plugin", PLUGIN)
    assert code == 0, out + err
    studies = optuna_trials(isolated)
    assert len(studies) == 2  # one per method: both seeds share it
    optima = {"bowl": (0.7, -0.3), "bowl-far": (-1.2, 1.5)}
    for trials in studies.values():
        assert [t.state.name for t in trials] == ["COMPLETE"] * 20  # the same budget for each
        assert trials[0].params == {"x": 0.0, "y": 0.0} and trials[0].user_attrs["defaults"]  # trial 0
        best = max(trials, key=lambda t: t.value)
        name = next(n for n, (x, y) in optima.items() if abs(trials[0].value + x * x + y * y) < 1e-6)
        x, y = optima[name]
        assert best.value > -0.1 and abs(best.params["x"] - x) < 0.3 and abs(best.params["y"] - y) < 0.3
    # scored on val only: every trial evaluated val once, nothing evaluated test
    assert (isolated / "evaluated.txt").read_text().split() == ["val"] * 40
    # trials are MLflow runs of their own experiment, under one parent per study, never on the board
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bowls-tune").experiment_id], max_results=500)
    trial_runs = [r for r in runs if r.data.tags.get("kdbench.role") == "trial"]
    parents = {r.info.run_id for r in runs if r.data.tags.get("kdbench.role") == "study"}
    assert len(trial_runs) == 40 and len(parents) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == parents
    assert all("val_score" in r.data.metrics and "test_score" not in r.data.metrics for r in trial_runs)
    assert client.get_experiment_by_name("bowls") is None  # no teacher, so nothing ran in the suite's own


def test_tuned_runs_carry_the_chosen_values_in_params_and_key_and_stay_apart_from_untuned(cli, isolated: Path):
    suite = write_suite(isolated / "bowls.yaml", SUITE.format(trials=6))
    assert cli("tune", suite, "--plugin", PLUGIN)[0] == 0
    assert cli("run", suite, "--plugin", PLUGIN)[0] == 0
    code, out, err = cli("run", suite, "--plugin", PLUGIN, "--tuned")
    assert code == 0, out + err
    assert "tuned: 6 trials per method on val, TPE after 3 random; bowl: x [-2, 2], y [-2, 2]" in " ".join(out.split())
    studies = {t[0].value: t for t in optuna_trials(isolated).values()}
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bowls").experiment_id])
    tuned = [r for r in runs if "kdbench.tuned" in r.data.tags]
    untuned = [r for r in runs if "kdbench.tuned" not in r.data.tags]
    assert len(tuned) == len(untuned) == 4  # two methods × two seeds, each protocol
    keys = {r.data.tags["kdbench.config_hash"] for r in tuned} | {r.data.tags["kdbench.config_hash"] for r in untuned}
    assert len(keys) == 8  # the tuned values are part of the key
    for run in tuned:
        trials = next(t for t in studies.values() if t[0].params and run.data.tags["kdbench.tuned"])
        chosen = json.loads(run.data.tags["kdbench.params"])
        best = [t for t in sum(studies.values(), []) if t.params == {"x": chosen["x"], "y": chosen["y"]}]
        assert best and trials, run.data.tags
        assert run.data.params["method.params.x"] == str(chosen["x"])
        assert run.data.params["tuning.trials"] == "6" and run.data.params["tuning.split"] == "val"
    code, out, _ = cli("leaderboard", suite, "--plugin", PLUGIN)
    assert code == 0 and "defaults: not tuned" in out and "tuning Δval" not in out
    # published tuned: the page's table is the tuned runs', the untuned runs' its second table, never mixed
    # (--allow-dirty: these runs come from the working tree under test)
    code, _, err = cli("publish", suite, "--plugin", PLUGIN, "--tuned", "--allow-dirty", "--out", isolated / "out")
    assert code == 0, err
    page = json.loads((isolated / "out" / "bowls" / "leaderboard.json").read_text())
    assert page["protocol"].startswith("tuned: 6 trials") and page["defaults"]["protocol"] == "defaults: not tuned"

    def means(rows: list, group: list) -> dict[str, float]:
        found = {}
        for method in ("bowl", "bowl-far"):
            values = [r.data.metrics["test_score"] for r in group if r.data.tags["kdbench.method"] == method]
            found[method] = sum(values) / len(values)
        assert {r["method"]: r["mean"] for r in rows} == pytest.approx(found)
        return found

    assert means(page["rows"], tuned) != means(page["defaults"]["rows"], untuned)
    markdown = (isolated / "out" / "bowls" / "leaderboard.md").read_text()
    assert "## defaults: not tuned (the same suite at the methods' defaults)" in markdown
    assert 'id="leaderboard-defaults"' in (isolated / "out" / "bowls" / "leaderboard.html").read_text()


@pytest.mark.parametrize(("epochs", "first"), [(3, 2), (6, 3)])  # never at epoch 1; else from half-way
def test_the_median_pruner_stops_trials_behind_the_median_and_they_count_towards_the_budget(
        cli, isolated: Path, epochs: int, first: int):
    suite = write_suite(isolated / "pruned.yaml", f"""
name: pruned
tasks: [bowl]
pairs:
  - {{student: carrier}}
methods: [bowl-epochs]
recipe:
  student: {{epochs: {epochs}}}
tune: {{trials: 8}}
""")
    code, out, err = cli("tune", suite, "--plugin", PLUGIN)
    assert code == 0, out + err
    (trials,) = optuna_trials(isolated).values()
    states = [t.state.name for t in trials]
    assert len(states) == 8 and set(states) == {"COMPLETE", "PRUNED"} and "PRUNED" not in states[:4]
    best = max(t.value for t in trials if t.state.name == "COMPLETE")
    for trial in trials:
        if trial.state.name == "PRUNED":  # stopped at its first prunable epoch, behind the median before it
            assert max(trial.intermediate_values) == first and trial.intermediate_values[first] < best
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("pruned-tune").experiment_id], max_results=100)
    pruned = [r for r in runs if "kdbench.pruned" in r.data.tags]
    assert len(pruned) == states.count("PRUNED") and all(r.info.status == "FINISHED" for r in pruned)
    assert all([m.step for m in client.get_metric_history(r.info.run_id, "val_score")] == list(range(1, first + 1))
               for r in pruned)


def test_a_tune_killed_between_trials_then_mid_trial_resumes_to_exactly_the_budget(cli, isolated: Path):
    suite = write_suite(isolated / "bowls.yaml", SUITE.format(trials=3))
    command = [sys.executable, "-m", "kdbench.cli", "tune", str(suite), "--plugin", PLUGIN]
    for kill in ("3", "2:end"):  # as the 3rd trial starts; then, resumed, as its 2nd trial's run ends, untold
        killed = subprocess.run(command, cwd=isolated, env={**os.environ, "KDBENCH_TEST_KILL": kill},
                                capture_output=True, text=True)
        assert killed.returncode == -9, killed.stderr
    resumed = subprocess.run(command, cwd=isolated, env=dict(os.environ), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    studies = optuna_trials(isolated)
    states = sorted([t.state.name for t in trials] for trials in studies.values())
    # the trial killed as it started is failed and not counted; the one whose run had ended is told what its
    # run recorded, so it counts: each study ends with exactly 3, and nothing was run twice
    assert states == [["COMPLETE"] * 3, ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]]
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bowls-tune").experiment_id], max_results=500)
    trial_runs = [r for r in runs if r.data.tags.get("kdbench.role") == "trial"]
    # the run of the trial killed as it started is KILLED, not left RUNNING
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 6 + ["KILLED"]
    finished = {(r.data.tags["kdbench.study"], int(r.data.tags["kdbench.trial"])): r.data.metrics["val_score"]
                for r in trial_runs if r.info.status == "FINISHED"}
    assert finished == {(name, t.number): t.value for name, trials in studies.items() for t in trials
                        if t.state.name == "COMPLETE"}
    # and they are the trials an uninterrupted study draws: a trial killed uncounted is drawn again as it was
    (isolated / "reference").mkdir()
    store = f"sqlite:///{isolated / 'reference' / 'mlflow.db'}"
    assert cli("tune", suite, "--plugin", PLUGIN, "--tracking-uri", store)[0] == 0
    reference = optuna_trials(isolated / "reference")

    def complete(found: dict[str, list]) -> dict[str, list]:
        return {name: [(t.params, t.value) for t in trials if t.state.name == "COMPLETE"]
                for name, trials in found.items()}

    assert complete(studies) == complete(reference)


def test_a_range_a_method_refuses_is_a_one_line_error_naming_method_and_parameter(cli, isolated: Path):
    suite = write_suite(isolated / "bad.yaml", """
name: bad
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [kd]
tune: {params: {kd: {T: {low: 0, high: 5}}}}
""")
    code, out, err = cli("tune", suite)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"kdbench: error: {suite}: tune.params.kd.T: T = 0.0 is refused by method "
                                        "kd: T must be positive, got 0.0"]


def test_trials_through_the_process_pool_keep_the_budget_exact_when_a_worker_dies(cli, isolated: Path,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    monkeypatch.setenv("KDBENCH_TEST_KILL", "once:3")  # the worker running the 3rd trial dies under it
    suite = write_suite(isolated / "bowls.yaml", SUITE.format(trials=5))
    code, out, err = cli("tune", suite, "--plugin", PLUGIN, "--executor", "process", "--max-parallel", "2")
    assert code == 0, out + err
    assert "worker died running" in err
    studies = optuna_trials(isolated)
    states = sorted([t.state.name for t in trials] for trials in studies.values())
    # the dead worker's trial is failed, not counted and replaced: exactly 5 finished trials per study
    assert [s.count("COMPLETE") for s in states] == [5, 5] and sorted(s.count("FAIL") for s in states) == [0, 1]
    for trials in studies.values():  # the defaults were tried (again, had they been the trial that died)
        assert [t.params for t in trials if t.user_attrs.get("defaults") and t.state.name == "COMPLETE"] == [
            {"x": 0.0, "y": 0.0}]
    assert set((isolated / "evaluated.txt").read_text().split()) == {"val"}
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bowls-tune").experiment_id], max_results=500)
    trial_runs = [r for r in runs if r.data.tags.get("kdbench.role") == "trial"]
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 10 + ["KILLED"]
    parents = {r.info.run_id for r in runs if r.data.tags.get("kdbench.role") == "study"}
    assert len(parents) == 2 and {r.data.tags["mlflow.parentRunId"] for r in trial_runs} == parents


def test_a_method_found_incompatible_by_its_first_trial_stops_and_its_tuned_run_is_na(cli, isolated: Path):
    """at needs spatial maps; these MLPs' features are vectors, which only building the models shows: the
    study stops after that one trial, the summary says why, and the tuned run is n/a with the reason."""
    suite = write_suite(isolated / "mlps.yaml", """
name: mlps
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [student-only, at]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 2}
tune: {trials: 3, recipe: {lr: {low: 0.01, high: 0.5, log: true}}}
""")
    code, out, err = cli("tune", suite)
    assert code == 0, out + err
    trials = {name.split("|")[0]: t for name, t in optuna_trials(isolated).items()}
    states = {name: [t.state.name for t in found] for name, found in trials.items()}
    assert sorted(len(s) for s in states.values()) == [1, 3] and ["FAIL"] in states.values()
    assert "n/a: no spatial feature map" in " ".join(out.split())
    code, out, err = cli("run", suite, "--tuned")
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlps").experiment_id])
    at = [r for r in runs if r.data.tags["kdbench.method"] == "at" and "kdbench.tuned" in r.data.tags]
    assert len(at) == 1 and at[0].data.tags["kdbench.skipped"].startswith("no spatial feature map")
    code, out, err = cli("leaderboard", suite, "--tuned")
    assert code == 0 and "tuned: 3 trials per method on val" in out and "?" not in out.split("\n")[0], out
    assert "at: nothing to search" not in " ".join(out.split()), "an n/a study has no space to state"
