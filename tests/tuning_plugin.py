"""A kdbench plugin whose validation score is a known function of a method's parameters, for the tuning tests.

Task ``bowl`` (kind ``objective``) scores a model by the number it carries: ``bowl`` and
``bowl-far`` train nothing (``train_steps`` 0) and hand over a model carrying
−(x − x*)² − (y − y*)² at their parameters, so where the sampler should end up is known exactly;
``bowl-epochs`` carries the same number through every epoch of a real training run (for the pruner).
Every evaluation appends its split to ``evaluated.txt`` in the working folder, so a test can prove
the test split is never touched while tuning. ``KDBENCH_TEST_KILL=N`` SIGKILLs the process when
the N-th trial run starts (between trials) and ``KDBENCH_TEST_KILL=N:end`` when its run has ended
but before the study has heard (mid-trial). ``KDBENCH_TEST_KILL=once:N`` SIGKILLs whichever process
starts the N-th trial counted over every process (a pool worker), once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from kdbench import (
    Batch,
    Kind,
    Method,
    Metric,
    ModelOutput,
    ModelSpec,
    Range,
    Recipe,
    Run,
    Task,
    TaskSpec,
    hookimpl,
)

OPTIMA = {"bowl": (0.7, -0.3), "bowl-far": (-1.2, 1.5)}


class Carrier(nn.Module):
    """A model that is a number."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)))
        self.scale = nn.Linear(1, 1)  # something to train, for a run that does

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.scale(x).squeeze(1) * 0 + self.value, {})


class Objective(Task):
    kind = "objective"
    primary_metric = "score"

    def __init__(self) -> None:
        super().__init__()
        self.recipes = {role: Recipe(epochs=1, batch_size=4, lr=0.1) for role in ("teacher", "student")}

    @property
    def num_train(self) -> int:
        return 4

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator | None) -> Iterator[Batch]:
        yield {"x": torch.zeros(4, 1), "index": torch.arange(4)}

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return output.pow(2).mean()

    def evaluate(self, model: nn.Module, split: str, role: str, reference: nn.Module | None = None) -> dict[str, float]:
        with open(Path.cwd() / "evaluated.txt", "a") as out:
            out.write(split + "\n")
        return {"score": float(model.value)}


class Bowl(Method):
    """No training: the model is the objective at (x, y)."""

    name = "bowl"
    kinds = ("objective",)
    scheme = "none"
    needs = "none"
    defaults = {"x": 0.0, "y": 0.0}
    search_space = {"x": Range(-2.0, 2.0), "y": Range(-2.0, 2.0)}

    def train_steps(self) -> int:
        return 0

    def trained(self, student: nn.Module) -> nn.Module:
        best_x, best_y = OPTIMA[self.name]
        return Carrier(-((self.x - best_x) ** 2) - (self.y - best_y) ** 2)


class FarBowl(Bowl):
    name = "bowl-far"


class EpochBowl(Bowl):
    """The same objective, but trained for the recipe's epochs: each epoch's val score is the objective,
    so the median pruner has curves to compare."""

    name = "bowl-epochs"

    def train_steps(self) -> None:
        return None

    def prepare_student(self, student: nn.Module) -> None:
        best_x, best_y = OPTIMA["bowl"]
        student.value.fill_(-((self.x - best_x) ** 2) - (self.y - best_y) ** 2)

    def trained(self, student: nn.Module) -> nn.Module:
        return student

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        return {"task": self.task.loss(student.output, batch)}


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [Kind("objective", baseline="bowl", reference="bowl-far", metrics=(Metric("score", True),))]


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [TaskSpec("bowl", "objective", "numbers", Objective)]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [ModelSpec("carrier", lambda task: Carrier(), kinds=("objective",))]


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [Bowl, FarBowl, EpochBowl]


_started = 0


@hookimpl
def kdbench_run_start(run: Run) -> None:
    global _started
    if run.role != "trial":
        return
    _started += 1
    target, _, when = os.environ.get("KDBENCH_TEST_KILL", "").partition(":")
    if target == "once":
        with open(Path.cwd() / "trials-started.txt", "a") as out:
            out.write(f"{os.getpid()}\n")
        marker = Path.cwd() / "killed-once"
        if len((Path.cwd() / "trials-started.txt").read_text().split()) == int(when) and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    elif target and int(target) == _started and not when:
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def kdbench_run_end(run: Run) -> None:
    target, _, when = os.environ.get("KDBENCH_TEST_KILL", "").partition(":")
    if run.role == "trial" and target.isdigit() and int(target) == _started and when == "end":
        os.kill(os.getpid(), signal.SIGKILL)
