"""Student transforms in the core: declared per case, keyed, applied around any method, shown per row."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_DIGITS, write_suite

SCALING_PLUGIN = """
import torch
from kdbench import StudentTransform, hookimpl

CALLS = {calls!r}


def note(step):
    with open(CALLS, "a") as log:
        log.write(step + "\\n")


class Scaled(StudentTransform):
    \"\"\"Multiplies every trained weight by its value: a stand-in for compression whose effect is known.\"\"\"
    name = "scaled"
    argument = "factor"

    def __init__(self, value):
        if not 0 < value <= 1:
            raise ValueError("factor must be in (0, 1]")
        super().__init__(value)

    @property
    def backend(self):
        return "torch.mul_"

    def before_training(self, model, task):
        note("before")
        return model

    def after_training(self, model, task):
        note("after")
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(self.value)
        return model

    def fine_tune(self, recipe):
        return recipe.updated({{"epochs": 1}})


@hookimpl
def kdbench_transforms():
    return [Scaled]
"""



@pytest.fixture
def plugin(isolated: Path) -> Path:
    path = isolated / "scaling.py"
    path.write_text(SCALING_PLUGIN.format(calls=str(isolated / "calls.txt")))
    return path


def suite(isolated: Path, name: str, methods: str = "[student-only, kd]", transforms: str = "") -> Path:
    text = TINY_DIGITS.format(name=name, methods=methods, seeds=1) + transforms + "\n"
    return write_suite(isolated / f"{name}.yaml", text)


def finished(isolated: Path, experiment: str) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([found.experiment_id]) if r.info.status == "FINISHED"]


def plan(path: Path, plugin: Path) -> list:
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load([str(plugin)])
    loaded = load_suite(path, registry)
    return expand(loaded, registry, task_instances(loaded, registry))


def test_fp32_rows_keep_their_keys_and_each_transform_setting_has_its_own(isolated: Path, plugin: Path):
    plain = {c.key for c in plan(suite(isolated, "plain"), plugin)}
    grown = plan(suite(isolated, "grown", transforms="transforms: [fp32, scaled-0.5, scaled-0.25]"), plugin)
    students = [c for c in grown if c.role != "teacher"]
    assert plain <= {c.key for c in grown}, "adding transforms must not rekey the fp32 rows"
    assert len(students) == 6 and len({c.key for c in students}) == 6
    assert sorted({c.student for c in students}) == ["mlp-30", "mlp-30+scaled-0.25", "mlp-30+scaled-0.5"]
    scaled = next(c for c in students if c.transform is not None and c.transform.value == 0.5)
    assert scaled.config["student"]["transform"] == {"name": "scaled", "value": 0.5}
    assert scaled.tags()["kdbench.transform_backend"] == "torch.mul_"
    assert all(c.deployment for c in students), "a case listing transforms measures the deployed view"
    assert not any(c.deployment for c in plan(suite(isolated, "plain2"), plugin))


def test_a_transform_runs_around_the_method_and_its_rows_have_their_own_baseline(isolated: Path, cli,
                                                                                 plugin: Path):
    path = suite(isolated, "scaled", transforms="transforms: [fp32, scaled-0.5]")
    code, out, err = cli("run", path, "--plugin", plugin)
    assert code == 0, err
    runs = finished(isolated, "scaled")
    assert len(runs) == 5  # a teacher, and two methods under two transforms
    calls = (isolated / "calls.txt").read_text().split()
    assert calls == ["before", "after"] * 2, "each transformed run: before training, then after it"
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert metrics["disk_bytes"] > metrics["params"] * 4 * 0.9, "fp32 weights: 4 bytes a parameter at least"
        assert metrics["zip_bytes"] < metrics["disk_bytes"]
        if tags["kdbench.role"] == "teacher":
            continue
        assert {"latency_ms_b64", "latency_ms_all", "latency_ms_b64_all"} <= set(metrics)
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        if "kdbench.transform" in tags:
            assert tags["kdbench.student"] == "mlp-30+scaled-0.5"
            assert epochs == [1, 2], "the fine-tuning phase is logged after the first phase's epoch"
        else:
            assert tags["kdbench.student"] == "mlp-30" and epochs == [1]

    from kdbench.leaderboard.columns import footnotes
    from kdbench.leaderboard.store import read
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load([str(plugin)])
    board, _ = read(load_suite(path, registry), None, registry.kinds.entries, registry.manager.hook)
    rows = {(r.student, r.method): r for r in board.rows.itertuples()}
    assert {("mlp-30+scaled-0.5", "student-only"), ("mlp-30+scaled-0.5", "kd"), ("mlp-30", "kd")} <= set(rows)
    scaled_kd, scaled_alone = rows["mlp-30+scaled-0.5", "kd"], rows["mlp-30+scaled-0.5", "student-only"]
    assert scaled_kd.gain == pytest.approx(scaled_kd.mean - scaled_alone.mean)
    assert any("scaled-0.5 (torch.mul_)" in note for note in footnotes(board))


def test_a_method_that_owns_its_scheme_cannot_be_fine_tuned_and_says_so(isolated: Path, plugin: Path):
    combinations = plan(suite(isolated, "owned", methods="[dml]", transforms="transforms: [scaled-0.5]"), plugin)
    dml = next(c for c in combinations if c.role != "teacher")
    assert dml.skip_reason is not None and "owns its training scheme" in dml.skip_reason


@pytest.mark.parametrize("transforms, message", [
    ("[fp32, scaled-0.5, scaled-0.50]", "transforms[2]: transform 'scaled-0.50' is listed twice"),
    ("[scaled]", "transforms[0]: transform 'scaled' takes its factor after a dash"),
    ("[scaled-2]", "transforms[0]: transform 'scaled-2': factor must be in (0, 1]"),
    ("[scaeld-0.5]", "unknown transform 'scaeld-0.5'"),
    ("[]", "transforms"),
])
def test_a_bad_transform_is_one_line_naming_the_field(isolated: Path, cli, plugin: Path, transforms: str,
                                                      message: str):
    code, out, err = cli("run", suite(isolated, "bad", transforms=f"transforms: {transforms}"), "--plugin", plugin)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (isolated / "calls.txt").exists()
