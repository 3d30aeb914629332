"""A case whose students start from another case's trained runs (``init``): validated before
anything trains, part of each run's key and row, trained first and once, its weights kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from kdbench.plan import expand, task_instances
from kdbench.registry import Registry
from kdbench.suite import load_suite
from tests.conftest import write_suite
from tests.test_runner import runs

WARM = """
name: warm
seeds: {seeds}
recipe:
  student: {{epochs: 4}}
cases:
  - name: scratch
    tasks: [digits]
    pairs: [{{student: mlp-30}}]
    methods: [student-only]
  - name: warm
    tasks: [digits]
    pairs: [{{student: mlp-30}}]
    methods: [student-only]
    init: {{case: {case}, method: {method}}}
    recipe:
      student: {{lr: 1.0e-9}}
"""
"""The warm case's student barely moves from where it starts, so it scores as its start does."""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def combinations(isolated: Path, registry: Registry, seeds: int = 2) -> list:
    suite = load_suite(write_suite(isolated / "warm.yaml", WARM.format(seeds=seeds, case="scratch",
                                                                         method="student-only")), registry)
    return expand(suite, registry, task_instances(suite, registry))


def test_init_is_checked_against_the_cases_above_before_anything_trains(isolated: Path, cli):
    for case, method, message in [("later", "student-only", "init.case 'later' is not a case above it"),
                                  ("scratch", "kd", "case 'scratch' does not run method 'kd'")]:
        suite = write_suite(isolated / "bad.yaml", WARM.format(seeds=1, case=case, method=method))
        code, out, err = cli("run", suite)
        assert code == 2 and message in err, err
        assert "Traceback" not in err and not runs(isolated, "warm")


def test_the_start_is_part_of_the_key_and_the_row_and_the_scratch_rows_keep_their_keys(isolated: Path, registry):
    found = combinations(isolated, registry)
    scratch = [c for c in found if c.init is None]
    warm = [c for c in found if c.init is not None]
    assert len(scratch) == len(warm) == 2
    assert all(c.keeps_weights for c in scratch) and not any(c.keeps_weights for c in warm)
    for run in warm:
        assert run.init in scratch and run.init.seed == run.seed
        assert run.config["init"] == run.init.config
        assert run.dependencies == (run.init,)
        assert run.student == "mlp-30+from-student-only" and run.tags()["kdbench.init"] == run.init.key
    assert found.index(warm[0].init) < found.index(warm[0])

    alone = load_suite(write_suite(isolated / "alone.yaml", """
name: warm
seeds: 2
recipe:
  student: {epochs: 4}
tasks: [digits]
pairs: [{student: mlp-30}]
methods: [student-only]
"""), registry)
    assert {c.key for c in expand(alone, registry, task_instances(alone, registry))} == {c.key for c in scratch}


def test_a_warm_run_starts_from_its_source_and_a_lost_source_is_trained_again(isolated: Path, cli, registry):
    suite = write_suite(isolated / "warm.yaml", WARM.format(seeds=1, case="scratch", method="student-only"))
    code, _, err = cli("run", suite)
    assert code == 0, err
    found = {r.data.tags["kdbench.student"]: r for r in runs(isolated, "warm")}
    source, warm = found["mlp-30"], found["mlp-30+from-student-only"]
    assert {source.info.status, warm.info.status} == {"FINISHED"}
    assert warm.data.tags["kdbench.init"] == source.data.tags["kdbench.config_hash"]

    # the source's weights are in the cache, and they are what its run scored
    spec = registry.tasks.get("digits")
    task = spec.build(**spec.options).for_seed(0)
    cache = isolated.parent / "cache" / "teachers"
    kept = cache / f"{source.data.tags['kdbench.config_hash']}.pt"
    model = registry.students.get("mlp-30").build(task)
    model.load_state_dict(torch.load(kept, weights_only=True))
    assert task.evaluate(model.eval(), "test", "student")["nll"] == pytest.approx(source.data.metrics["test_nll"])
    # a student that learnt at 1e-9 from a fresh start would still be guessing; this one scores as its start
    assert source.data.metrics["test_accuracy"] > 0.5
    assert warm.data.metrics["test_accuracy"] == source.data.metrics["test_accuracy"]
    assert warm.data.metrics["test_nll"] == pytest.approx(source.data.metrics["test_nll"], abs=1e-4)

    shutil.rmtree(cache)  # the weights are gone: the source runs again, the warm run stays finished
    code, _, err = cli("run", suite)
    assert code == 0 and "1/2 runs already finished" in err, err
    again = [r for r in runs(isolated, "warm") if r.data.tags["kdbench.student"] == "mlp-30"]
    assert len(again) == 1 and again[0].info.run_id != source.info.run_id and kept.is_file()


def test_tuning_refuses_a_suite_that_starts_from_another_case(isolated: Path, cli):
    suite = write_suite(isolated / "warm.yaml", WARM.format(seeds=1, case="scratch", method="student-only"))
    code, _, err = cli("tune", suite)
    assert code == 2 and "do not tune such suites yet" in err and "Traceback" not in err
