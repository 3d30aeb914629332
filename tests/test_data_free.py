"""Data-free methods are held to their claim: the task they are given has no training inputs."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import TINY_DIGITS, write_suite

DATA_FREE_PLUGIN = """
import torch
import torch.nn.functional as F
from kdbench import Method, call_model, hookimpl


class NoiseKD(Method):
    \"\"\"Matches the teacher on Gaussian noise shaped like one input: never a training image.\"\"\"
    name = "noise-kd"
    kinds = ("classification",)
    needs = "model"
    data_free = True

    def fit(self, context):
        shape = context.task.latency_input("student").shape[1:]
        student, teacher = context.model, self.teachers[0].model
        optimiser = torch.optim.SGD(student.parameters(), lr=0.05)
        generator = context.generator()
        for _ in range(20):
            x = torch.randn(32, *shape, generator=generator)
            with torch.no_grad():
                target = F.softmax(call_model(teacher, x).output, 1)
            loss = F.kl_div(F.log_softmax(call_model(student, x).output, 1), target, reduction="batchmean")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return student.eval()


class Peeking(NoiseKD):
    \"\"\"Claims to be data-free, then reads a training batch.\"\"\"
    name = "peeking"

    def fit(self, context):
        next(iter(context.task.batches("train", context.recipe, context.generator())))
        return super().fit(context)


class EngineTrained(Method):
    \"\"\"Claims to be data-free but leaves its loop to the engine.\"\"\"
    name = "engine-trained"
    kinds = ("classification",)
    data_free = True

    def loss(self, batch, student, teachers):
        return {"task": self.task.loss(student.output, batch)}


@hookimpl
def kdbench_methods():
    return [NoiseKD, Peeking, EngineTrained]
"""


def test_a_data_free_method_runs_one_that_reads_a_training_batch_fails_and_one_without_a_loop_is_na(
        isolated: Path, cli):
    plugin = isolated / "data_free.py"
    plugin.write_text(DATA_FREE_PLUGIN)
    suite = write_suite(isolated / "free.yaml", TINY_DIGITS.format(
        name="free", methods="[noise-kd, peeking, engine-trained]", seeds=1))
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 1, "one run failed"
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("free").experiment_id])
    runs = {r.data.tags["kdbench.method"]: r for r in found}

    honest = runs["noise-kd"]
    assert honest.info.status == "FINISHED" and "kdbench.skipped" not in honest.data.tags
    assert 0 <= honest.data.metrics["test_accuracy"] <= 1

    peeking = runs["peeking"]
    assert peeking.info.status == "FAILED"
    assert peeking.data.tags["kdbench.error"] == (
        "TrainingInputRead: method peeking is declared data-free but asked for the training split's batches")

    assert "must own fit" in runs["engine-trained"].data.tags["kdbench.skipped"]
