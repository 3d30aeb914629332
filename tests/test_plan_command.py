"""`kdbench plan` and `kdbench run --dry-run`: every run's state by the runner's own rule, and an estimate
of the wall time from recorded runs or a probe, with nothing trained and nothing written."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_DIGITS, write_suite


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal wide enough that no cell of the plan wraps: one line per run."""
    monkeypatch.setenv("COLUMNS", "400")


def labels(out: str) -> dict[str, str]:
    """Each plan row by its run label (the rows' first cell)."""
    return {line.split("  ")[0].strip(): line for line in out.splitlines() if " · seed " in line}


def store_runs(isolated: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_fresh_suite_is_probed_and_nothing_is_written(cli, tiny_suite, isolated: Path) -> None:
    cache = isolated.parent / "cache"
    probes_before = set(Path(tempfile.gettempdir()).glob("kdbench-probe-*"))
    code, out, err = cli("plan", tiny_suite(methods="[kd]"), "--max-parallel", "2")
    assert code == 0, err
    rows = labels(out)
    assert set(rows) == {"digits · hinton-mlp-1200 · seed 0", "digits · mlp-30 · kd · seed 0"}
    assert all("to run: new" in row and row.rstrip().endswith("probe") for row in rows.values())
    assert "no checkpoint yet" in rows["digits · hinton-mlp-1200 · seed 0"]
    assert "teacher hinton-mlp-1200: runs first" in rows["digits · mlp-30 · kd · seed 0"]
    assert err.count("probing ") == 2
    assert "2 runs: 0 finished, 2 to run" in out and "one after another" in out and "--max-parallel 2" in out
    assert not (isolated / "mlflow.db").exists() and not (isolated / "mlruns").exists()
    assert not (cache / "teachers").exists()
    assert set(Path(tempfile.gettempdir()).glob("kdbench-probe-*")) == probes_before, "the probe's folder is left"


def test_after_a_run_the_plan_reads_the_store_and_run_dry_run_prints_the_same(cli, tiny_suite,
                                                                              isolated: Path) -> None:
    code, _, err = cli("run", tiny_suite(methods="[kd]"))
    assert code == 0, err
    recorded = {r.data.tags["kdbench.variant"]: r.data.metrics["wall_time_s"] for r in store_runs(isolated)}
    before = {(r.info.run_id, r.info.status) for r in store_runs(isolated)}
    suite = tiny_suite(methods="[kd]", seeds=2)
    code, out, err = cli("plan", suite, "--no-probe")
    assert code == 0, err
    rows = labels(out)
    for label in ("digits · hinton-mlp-1200 · seed 0", "digits · mlp-30 · kd · seed 0"):
        assert "  finished  " in rows[label] and rows[label].rstrip().endswith("finished")
    assert "checkpoint cached" in rows["digits · hinton-mlp-1200 · seed 0"]
    assert "teacher hinton-mlp-1200: cached" in rows["digits · mlp-30 · kd · seed 0"]
    for label in ("digits · hinton-mlp-1200 · seed 1", "digits · mlp-30 · kd · seed 1"):
        assert "to run: new" in rows[label] and rows[label].rstrip().endswith("recorded (1 run)")
    assert "teacher hinton-mlp-1200: runs first" in rows["digits · mlp-30 · kd · seed 1"]
    assert "4 runs: 2 finished, 2 to run" in out
    assert cli("run", suite, "--dry-run", "--no-probe") == (0, out, err)
    assert {(r.info.run_id, r.info.status) for r in store_runs(isolated)} == before, "the plan wrote to the store"

    from kdbench.cli import _expand, resolve_suite
    from kdbench.estimate import CacheView, makespan, plan
    from kdbench.estimate import store_runs as read_store
    from kdbench.registry import Registry
    from kdbench.suite import load_suite
    from kdbench.tracking import absolute_sqlite

    registry = Registry.load()
    combinations = _expand(suite, load_suite(resolve_suite(str(suite)), registry), registry)
    records, history = read_store(absolute_sqlite(f"sqlite:///{isolated / 'mlflow.db'}"), "tiny")
    planned = plan(combinations, records, history, CacheView(isolated.parent / "cache"), False, torch.device("cpu"),
                   None)
    estimates = {p.combination.variant: p.estimate.seconds for p in planned if p.runs}
    assert estimates == {"": recorded["teacher"], "kd": recorded["kd"]}
    assert makespan(planned, 1) == pytest.approx(sum(recorded.values()))


def test_the_plan_and_the_runner_apply_one_rule(isolated: Path) -> None:
    """Runs in the store as every state leaves them, and a teacher's checkpoint gone: the plan's state
    of each combination is what ``Runner.pending`` decides, with its reason."""
    from kdbench.estimate import run_state
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.runner import Runner
    from kdbench.suite import load_suite
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import Tracker

    registry = Registry.load()
    suite = load_suite(write_suite(isolated / "s.yaml", TINY_DIGITS.format(
        name="rule", seeds=2, methods="[student-only, kd, cd, dkd]")), registry)
    combinations = {c.label: c for c in expand(suite, registry, task_instances(suite, registry))}
    tracker = Tracker(f"sqlite:///{isolated / 'mlflow.db'}", "rule")
    cache = TeacherCache(isolated.parent / "cache")
    ended = {"digits · hinton-mlp-1200 · seed 0": "FINISHED", "digits · hinton-mlp-1200 · seed 1": "FINISHED",
             "digits · mlp-30 · student-only · seed 0": "FINISHED", "digits · mlp-30 · kd · seed 0": "FAILED",
             "digits · mlp-30 · dkd · seed 0": "KILLED", "digits · mlp-30 · cd · seed 0": "FINISHED",
             "digits · mlp-30 · kd · seed 1": "RUNNING"}
    for label, status in ended.items():
        combination = combinations[label]
        extra = {"kdbench.skipped": combination.skip_reason} if combination.skip_reason else {}
        run_id = tracker.start(label, {**combination.tags(), **extra}, {})
        if status != "RUNNING":
            tracker.end(run_id, status)
    teacher = combinations["digits · hinton-mlp-1200 · seed 1"]
    cache.save(teacher.key, teacher.model_spec.build(teacher.task))  # seed 0's checkpoint is gone
    expected = {"digits · hinton-mlp-1200 · seed 0": "finished, but its weights are not in the cache",
                "digits · hinton-mlp-1200 · seed 1": "finished", "digits · mlp-30 · student-only · seed 0": "finished",
                "digits · mlp-30 · kd · seed 0": "failed before", "digits · mlp-30 · dkd · seed 0": "killed before",
                "digits · mlp-30 · cd · seed 0": "finished", "digits · mlp-30 · kd · seed 1": "left RUNNING by a "
                "killed process", "digits · mlp-30 · student-only · seed 1": "new"}
    by_key: dict[str, list] = {}
    for record in tracker.runs():
        by_key.setdefault(record.tags["kdbench.config_hash"], []).append(record)
    states = {label: run_state(c, by_key.get(c.key, []), cache, rerun=False) for label, c in combinations.items()}
    assert {label: states[label].why for label in expected} == expected
    for rerun in (False, True):
        todo, done = Runner(registry, tracker, cache, rerun=rerun).pending(list(combinations.values()))
        assert {c.label for c in done} == {label for label, c in combinations.items()
                                           if run_state(c, by_key.get(c.key, []), cache, rerun).done}
        assert len(todo) + len(done) == len(combinations)
    assert not done, "--rerun runs everything again"


def test_a_method_that_copies_the_task_is_probed_on_its_copy(cli, tiny_suite) -> None:
    """specialists trains each specialist on a relabelled copy of the task: the probe's slicing must follow
    the copy (it once read the original's labels, 0-9, into a specialist's 2-class head and failed)."""
    code, out, err = cli("plan", tiny_suite(methods="[{name: specialists, params: {clusters: 9}}]"))
    assert code == 0, err
    row = labels(out)["digits · mlp-30 · specialists · seed 0"]
    assert row.rstrip().endswith("probe") and "probe failed" not in row, row


def test_n_a_runs_and_start_dependencies_are_shown(cli, isolated: Path) -> None:
    suite = write_suite(isolated / "init.yaml", """
name: init
seeds: 1
cases:
  - {name: scratch, tasks: [digits], pairs: [{teacher: hinton-mlp-1200, student: mlp-30}],
     methods: [student-only, cd]}
  - {name: from-sft, tasks: [digits], pairs: [{teacher: hinton-mlp-1200, student: mlp-30}],
     methods: [kd], init: {case: scratch, method: student-only}}
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
""")
    code, out, err = cli("plan", suite, "--no-probe")
    assert code == 0, err
    rows = labels(out)
    assert "n/a: method cd supports ranking tasks, not classification" in rows["digits · mlp-30 · cd · seed 0"]
    started = rows["digits · mlp-30+from-student-only · kd · seed 0"]
    assert "teacher hinton-mlp-1200: runs first" in started and "starts from student-only: runs first" in started
    assert "no recorded run (--no-probe)" in started and "?" in started
    assert "(1 of them n/a, recorded without training)" in out
    assert "3 run(s) not estimated, left out" in out


def test_workers_take_runs_in_plan_order_once_what_they_need_has_ended(isolated: Path) -> None:
    """A teacher of 10 s, student-only of 4 s and kd (which needs the teacher) of 6 s: 20 s one after
    another; two workers run student-only beside the teacher, and kd after it: 16 s."""
    from kdbench.estimate import Estimate, PlannedRun, RunState, makespan
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load()
    suite = load_suite(write_suite(isolated / "s.yaml", TINY_DIGITS.format(
        name="order", seeds=1, methods="[student-only, kd]")), registry)
    seconds = {"": 10.0, "student-only": 4.0, "kd": 6.0}
    planned = [PlannedRun(c, RunState(False, "new"), Estimate(seconds[c.variant], "probe"), False)
               for c in expand(suite, registry, task_instances(suite, registry))]
    assert [makespan(planned, n) for n in (1, 2, 3)] == [20.0, 16.0, 16.0]
    finished_teacher = [replace(p, state=RunState(True, "finished")) if p.combination.role == "teacher" else p
                        for p in planned]
    assert makespan(finished_teacher, 2) == 6.0  # nothing waits on a teacher trained before


def test_a_probe_scales_its_steps_and_validations_to_the_recipe() -> None:
    """Training started at 0; four batches 0.1 s apart from 1.0 s; the epoch ended (validation done) at
    1.5 s; the run took 2.0 s. At 10 epochs of 20 batches: 0.5 s of the rest of the run, 0.9 s once for
    the first step and setup, and 10 × (20 × 0.1 + 0.2) s."""
    from kdbench.estimate import _Clock

    clock = _Clock()
    clock.started = 0.0
    clock.events = [("batch", 1.0), ("batch", 1.1), ("batch", 1.2), ("batch", 1.3), ("epoch", 1.5)]
    assert clock.scaled(2.0, epochs=10, batches=20) == pytest.approx(0.5 + 0.9 + 10 * (20 * 0.1 + 0.2))
    clock.events += [("batch", 2.0), ("batch", 2.1), ("batch", 2.2), ("batch", 2.3), ("epoch", 2.5)]  # two stages
    # the half second between the stages is set-up, counted once
    assert clock.scaled(3.0, epochs=10, batches=20) == pytest.approx(0.5 + 1.3 + 2 * 10 * (20 * 0.1 + 0.2))
