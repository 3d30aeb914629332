"""The runner: resume, rerun, failures recorded while the suite goes on, teachers trained once."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import TINY_DIGITS, write_suite

FLAKY_PLUGIN = """
import math, os
import torch
from kdbench import Method, hookimpl


class Flaky(Method):
    \"\"\"Raises while the flag file exists.\"\"\"
    name = "flaky"
    kinds = ("classification",)
    needs = "logits"

    def loss(self, batch, student, teachers):
        if os.path.exists({flag!r}):
            raise RuntimeError("flaky method failed on purpose")
        return {{"task": self.task.loss(student.output, batch)}}


class Diverges(Method):
    \"\"\"Returns a NaN loss.\"\"\"
    name = "diverges"
    kinds = ("classification",)
    needs = "logits"

    def loss(self, batch, student, teachers):
        return {{"task": self.task.loss(student.output, batch) * math.nan}}


class RankingOnly(Method):
    \"\"\"Supports ranking tasks only.\"\"\"
    name = "ranking-only"
    kinds = ("ranking",)

    def loss(self, batch, student, teachers):
        raise AssertionError("never called")


@hookimpl
def kdbench_methods():
    return [Flaky, Diverges, RankingOnly]
"""


def runs(isolated: Path, experiment: str) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def by_method(found: list) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for run in found:
        grouped.setdefault(run.data.tags["kdbench.method"], []).append(run)
    return grouped


def test_second_run_trains_nothing_and_rerun_forces(isolated: Path, cli, tiny_suite):
    suite = tiny_suite(seeds=2)
    code, out, err = cli("run", suite)
    assert code == 0, err
    first = runs(isolated, "tiny")
    assert len(first) == 6 and {r.info.status for r in first} == {"FINISHED"}

    code, out, err = cli("run", suite)
    assert code == 0
    assert "6/6 runs already finished, skipped" in err
    assert "0 finished, 0 failed, 0 n/a, 6 skipped" in out
    assert {r.info.run_id for r in runs(isolated, "tiny")} == {r.info.run_id for r in first}

    code, out, err = cli("run", suite, "--rerun")
    assert code == 0
    again = runs(isolated, "tiny")
    assert len(again) == 6, "a rerun replaces finished runs: one FINISHED run per key"
    assert not {r.info.run_id for r in again} & {r.info.run_id for r in first}
    keys = [r.data.tags["kdbench.config_hash"] for r in again]
    assert len(set(keys)) == 6
    # identical metrics: same seed, same config, deterministic on CPU
    metric = {r.data.tags["kdbench.config_hash"]: r.data.metrics["test_accuracy"] for r in first}
    assert all(metric[r.data.tags["kdbench.config_hash"]] == r.data.metrics["test_accuracy"] for r in again)


def test_raising_method_is_recorded_and_the_suite_goes_on_then_rerun_redoes_it(isolated: Path, cli, tiny_suite):
    flag = isolated / "fail.flag"
    flag.write_text("x")
    plugin = isolated / "flaky_plugin.py"
    plugin.write_text(FLAKY_PLUGIN.format(flag=str(flag)))
    suite = tiny_suite(methods="[flaky, student-only, kd]")
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 1
    assert "FAILED tiny" not in out  # labels name the task, not the suite
    assert "flaky method failed on purpose" in out
    grouped = by_method(runs(isolated, "tiny"))
    failed = grouped["flaky"][0]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["kdbench.error"] == "RuntimeError: flaky method failed on purpose"
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    trace = client.download_artifacts(failed.info.run_id, "traceback.txt", str(isolated))
    assert "Traceback" in Path(trace).read_text()
    assert grouped["kd"][0].info.status == "FINISHED" and grouped["student-only"][0].info.status == "FINISHED"

    flag.unlink()
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, out
    assert "3/4 runs already finished, skipped" in err
    grouped = by_method(runs(isolated, "tiny"))
    assert sorted(r.info.status for r in grouped["flaky"]) == ["FAILED", "FINISHED"]
    assert len(grouped["kd"]) == 1


def test_non_finite_loss_fails_the_run(isolated: Path, cli, tiny_suite):
    plugin = isolated / "flaky_plugin.py"
    plugin.write_text(FLAKY_PLUGIN.format(flag=str(isolated / "absent")))
    code, out, _ = cli("run", tiny_suite(methods="[diverges, kd]"), "--plugin", plugin)
    assert code == 1
    grouped = by_method(runs(isolated, "tiny"))
    assert grouped["diverges"][0].data.tags["kdbench.error"].startswith("DivergedError: non-finite loss at epoch 1")
    assert grouped["kd"][0].info.status == "FINISHED"


def test_incompatible_combination_is_na_with_reason_not_a_crash(isolated: Path, cli, tiny_suite):
    plugin = isolated / "flaky_plugin.py"
    plugin.write_text(FLAKY_PLUGIN.format(flag=str(isolated / "absent")))
    code, out, _ = cli("run", tiny_suite(methods="[ranking-only, student-only]"), "--plugin", plugin)
    assert code == 0
    assert "method ranking-only supports ranking tasks, not classification" in out
    skipped = by_method(runs(isolated, "tiny"))["ranking-only"][0]
    assert "not classification" in skipped.data.tags["kdbench.skipped"]
    assert "test_accuracy" not in skipped.data.metrics


def test_teacher_trained_once_and_reused_across_methods_and_invocations(isolated: Path, cli, tiny_suite):
    code, _, _ = cli("run", tiny_suite(name="one", methods="[kd]"))
    assert code == 0
    cached = list((isolated.parent / "cache" / "teachers").glob("*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    # a different suite with the same teacher config reuses the checkpoint: no teacher retraining
    code, _, err = cli("run", tiny_suite(name="two", methods="[kd, {name: kd, params: {T: 2.0}}]"))
    assert code == 0, err
    assert cached[0].stat().st_mtime_ns == stamp
    assert len(list((isolated.parent / "cache" / "teachers").glob("*"))) == 1, "no temporary files left"
    distilled = [r for r in runs(isolated, "two") if r.data.tags["kdbench.role"] == "distill"]
    assert len(distilled) == 2
    assert all(r.data.tags["kdbench.teacher_outputs_cached"] == "true" for r in distilled)


def test_stale_running_run_is_marked_killed_and_redone(isolated: Path, cli, tiny_suite):
    suite = tiny_suite(methods="[student-only]")
    assert cli("run", suite)[0] == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    student = next(r for r in runs(isolated, "tiny") if r.data.tags["kdbench.role"] == "student")
    # simulate a process killed mid-run: the run is left RUNNING and never finished
    client.delete_run(student.info.run_id)
    stale = client.create_run(student.info.experiment_id, tags=student.data.tags)
    code, _, err = cli("run", suite)
    assert code == 0 and "1/2 runs already finished" in err
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    live = [r for r in runs(isolated, "tiny") if r.data.tags["kdbench.role"] == "student"]
    assert sorted(r.info.status for r in live) == ["FINISHED", "KILLED"]


def test_a_teacher_killed_after_its_save_is_resumed_from_the_cache_with_its_curves(isolated: Path, cli, tiny_suite):
    suite = tiny_suite(methods="[student-only]")
    assert cli("run", suite)[0] == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    teacher = next(r for r in runs(isolated, "tiny") if r.data.tags["kdbench.role"] == "teacher")

    def curves(run_id: str) -> dict[str, list[tuple[int, float]]]:
        return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in ("train_loss", "val_nll")}

    logged = curves(teacher.info.run_id)
    assert [step for step, _ in logged["train_loss"]] == [1]
    # a process killed after the checkpoint's rename, before its run was recorded: the run is left RUNNING
    client.delete_run(teacher.info.run_id)
    client.create_run(teacher.info.experiment_id, tags=teacher.data.tags)
    code, _, err = cli("run", suite)
    assert code == 0, err
    resumed = next(r for r in runs(isolated, "tiny")
                   if r.data.tags["kdbench.role"] == "teacher" and r.info.status == "FINISHED")
    assert resumed.data.tags["kdbench.teacher_cache"] == "hit", "evaluated from its checkpoint, not trained again"
    assert curves(resumed.info.run_id) == logged
    assert {k: v for k, v in resumed.data.metrics.items() if k.startswith("test_")} == {
        k: v for k, v in teacher.data.metrics.items() if k.startswith("test_")}


def test_runs_carry_the_documented_tags_metrics_and_params(isolated: Path, cli, tiny_suite):
    assert cli("run", tiny_suite(methods="[kd]"))[0] == 0
    distill = next(r for r in runs(isolated, "tiny") if r.data.tags["kdbench.role"] == "distill")
    tags = distill.data.tags
    for key in ("task", "teacher", "student", "method", "seed", "role", "config_hash", "version", "commit"):
        assert f"kdbench.{key}" in tags
    identity = (tags["kdbench.task"], tags["kdbench.teacher"], tags["kdbench.student"])
    assert identity == ("digits", "hinton-mlp-1200", "mlp-30")
    metrics = distill.data.metrics
    for key in ("test_accuracy", "test_errors", "test_ece", "test_fidelity", "params", "flops", "latency_ms",
                "teacher_params", "wall_time_s", "train_loss", "val_accuracy"):
        assert key in metrics, key
    assert metrics["params"] == 64 * 30 + 30 + 30 * 30 + 30 + 30 * 10 + 10
    assert metrics["flops"] == 2 * (64 * 30 + 30 * 30 + 30 * 10)
    assert 0 <= metrics["test_fidelity"] <= 1
    assert distill.data.params["method.params.T"] == "4.0"
    assert distill.data.params["student.recipe.epochs"] == "1"


def test_config_hash_is_stable_across_processes_and_changes_with_the_recipe(isolated: Path, tiny_suite):
    import subprocess
    import sys

    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    suite_path = tiny_suite(methods="[kd]")
    script = textwrap.dedent(f"""
        from kdbench.plan import expand, task_instances
        from kdbench.registry import Registry
        from kdbench.suite import load_suite
        registry = Registry.load()
        suite = load_suite({str(suite_path)!r}, registry)
        print(" ".join(c.key for c in expand(suite, registry, task_instances(suite, registry))))
    """)
    keys = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"}).stdout.split()
            for seed in (1, 2)]
    assert keys[0] == keys[1] and len(keys[0]) == 2

    registry = Registry.load()
    suite = load_suite(suite_path, registry)
    base = {c.role: c.key for c in expand(suite, registry, task_instances(suite, registry))}
    assert [base["teacher"], base["distill"]] == keys[0]
    changes = {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "momentum": 0.5,
               "weight_decay": 0.1, "schedule": "constant", "augment": "jitter1"}
    for field, value in changes.items():
        recipe = {"teacher": {"epochs": 1}, "student": {"epochs": 1, field: value}}
        changed = suite.model_copy(update={"recipe": recipe})
        keys_now = {c.role: c.key for c in expand(changed, registry, task_instances(changed, registry))}
        assert keys_now["teacher"] == base["teacher"], field
        assert keys_now["distill"] != base["distill"], f"changing student recipe {field} must change the hash"


def test_ctrl_c_marks_the_current_run_killed_prints_the_summary_and_resumes(isolated: Path, cli, tiny_suite):
    plugin = isolated / "interrupt_plugin.py"
    plugin.write_text(textwrap.dedent("""
        from kdbench import hookimpl

        @hookimpl
        def kdbench_epoch_end(run):
            if run.role == "distill":
                raise KeyboardInterrupt
    """))
    suite = tiny_suite(methods="[student-only, kd]")
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 130
    assert "interrupted: the run in progress is marked KILLED" in out
    assert "2 finished, 0 failed" in out  # the teacher and student-only got done before
    statuses = {r.data.tags["kdbench.role"]: r.info.status for r in runs(isolated, "tiny")}
    assert statuses == {"teacher": "FINISHED", "student": "FINISHED", "distill": "KILLED"}
    code, out, err = cli("run", suite)
    assert code == 0 and "2/3 runs already finished, skipped" in err


def test_one_method_listed_twice_gives_two_rows_never_one(isolated: Path, tiny_suite):
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    path = tiny_suite(methods="[kd, {name: kd, params: {T: 8.0}}, {name: dkd, grid: {beta: [1.0, 2.0]}}]")
    registry = Registry.load()
    suite = load_suite(path, registry)
    labels = sorted(c.variant for c in expand(suite, registry, task_instances(suite, registry)) if c.method)
    assert labels == ["dkd[beta=1.0]", "dkd[beta=2.0]", "kd", "kd[T=8.0]"]


PRETRAINED_PLUGIN = """
import torch
from torch import nn
from kdbench import ModelOutput, ModelSpec, hookimpl

BUILDS = {builds!r}


class Published(nn.Module):
    \"\"\"Weights fixed by its build, as a downloaded model's are.\"\"\"

    def __init__(self, inputs, classes):
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.linear = nn.Linear(inputs, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, inputs, generator=generator))
            self.linear.bias.zero_()

    def forward(self, x):
        hidden = x.flatten(1)
        return ModelOutput(self.linear(hidden), {{"embedding": hidden}})


def build(task):
    with open(BUILDS, "a") as log:
        log.write("built\\n")
    return Published(64, task.info["num_classes"])


@hookimpl
def kdbench_teachers():
    return [ModelSpec("published-linear", build, ("classification",), pretrained=True)]
"""


def test_a_pretrained_teacher_is_evaluated_as_built_never_trained_and_its_students_build_it(
        isolated: Path, cli):
    import torch

    from kdbench.registry import Registry

    builds = isolated / "builds.txt"
    plugin = isolated / "published.py"
    plugin.write_text(PRETRAINED_PLUGIN.format(builds=str(builds)))
    suite = write_suite(isolated / "pre.yaml", TINY_DIGITS.format(name="pre", methods="[kd]", seeds=1).replace(
        "hinton-mlp-1200", "published-linear"))
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, err
    found = {r.data.tags["kdbench.role"]: r for r in runs(isolated, "pre")}
    assert {r.info.status for r in found.values()} == {"FINISHED"}
    teacher = found["teacher"]
    assert teacher.data.tags["kdbench.pretrained"] == "true"
    assert not list((isolated.parent / "cache" / "teachers").glob("*")), "a pretrained teacher writes no checkpoint"
    assert "train_loss" not in teacher.data.metrics, "it trained"

    # its test accuracy is the built model's, evaluated here apart from the runner
    registry = Registry.load([str(plugin)])
    spec = registry.tasks.get("digits")
    task = spec.build(**spec.options)
    torch.manual_seed(0)
    untrained = registry.teachers.get("published-linear").build(task)
    expected = task.evaluate(untrained.eval(), "test", "teacher")["accuracy"]
    assert teacher.data.metrics["test_accuracy"] == expected
    assert builds.read_text().count("built") == 3, "teacher run, distill run, and this test each build it once"

    # resumed: both runs stay finished, though no checkpoint exists
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0 and "2/2 runs already finished" in err
