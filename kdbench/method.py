"""The method contract: a distillation algorithm is one short class — its loss.

A method is an ``nn.Module`` so that whatever it creates to learn with (adapters,
projection heads, memory banks) is owned by it, counted, and optimised together with
the student. The core's engine trains every method: each step it asks the method's
training view (``view``, given by the task kind's plugin where the batch alone is not
enough) for the batch, the student's outputs and the teachers', sums the terms ``loss``
returns and logs each. A few small hooks cover what differs between methods without a
loop of their own: sizing extras (``setup``), starting the student from the teacher's
weights (``prepare_student``), an EMA after each step (``after_step``), a budget counted in
steps (``train_steps``) and the model evaluated (``trained``). Only a scheme that trains
several models in turn (peers, born-again generations, an assistant, halving stages)
overrides ``fit``, and it trains each of them through the same engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from kdbench.errors import IncompatibleCombination
from kdbench.model import ModelOutput, ModelSpec
from kdbench.search_space import Distribution
from kdbench.task import Batch, Task
from kdbench.teacher import Teacher
from kdbench.training.view import TrainingView

if TYPE_CHECKING:
    from kdbench.training.context import TrainContext

SCHEMES = ("none", "offline", "online", "self")


class Method(nn.Module):
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...] | None]
    """Task kinds the method makes sense for; ``None``: any kind (it needs only the task's loss)."""
    scheme: ClassVar[str] = "offline"
    """'none' (no teacher), 'offline' (frozen teacher), 'online' (peers) or 'self'."""
    needs: ClassVar[str] = "logits"
    """What it reads from the teacher: 'none'; 'logits', its outputs on the training batches
    (black-box is enough, and they may be cached); 'features', its named features too; 'model',
    the network itself, to run it on inputs the method makes or to copy its weights."""
    defaults: ClassVar[dict[str, Any]] = {}
    """Hyper-parameters and their paper defaults; a suite may set or grid over these keys."""
    search_space: ClassVar[dict[str, Distribution]] = {}
    """Where ``kdbench tune`` searches each tunable hyper-parameter (``kdbench.Range``,
    ``kdbench.Choice``): around the paper's value, over what its authors varied. Every end of a
    range must pass ``validate_params``; the defaults are always the first trial."""
    max_teachers: ClassVar[int] = 1
    """More than 1: the method learns from several teachers at once."""
    view: ClassVar[type[TrainingView]] = TrainingView
    """What ``loss`` sees per step; a kind's plugin gives its methods a view of their own."""
    data_free: ClassVar[bool] = False
    """It never reads a training input (it learns from noise, a generator, or inputs it optimises
    against the teacher). The runner then gives it a task whose training split raises
    (``kdbench.data_free``), which is what makes the claim a checked one; it must own its scheme
    (``fit``), since the engine's loop reads training batches."""

    def __init__(self, task: Task, teachers: list[Teacher], **params: Any) -> None:
        super().__init__()
        self.task = task
        self.teachers = list(teachers)
        """The frozen teachers, each held to what the method ``needs``."""
        self.params = {**self.defaults, **params}
        for key, value in self.params.items():
            setattr(self, key.replace("-", "_"), value)
        self.epoch = 0
        """Set by the engine at the start of each epoch (for warm-ups and schedules)."""
        self.epochs = 0
        """Set by the engine: the run's number of epochs, so a warm-up can scale with the run."""

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        """Raise ``IncompatibleCombination`` when the method cannot run on this combination."""
        if cls.kinds is not None and task.kind not in cls.kinds:
            raise IncompatibleCombination(
                f"method {cls.name} supports {'/'.join(cls.kinds)} tasks, not {task.kind}"
            )
        if cls.scheme == "offline" and not teachers:
            raise IncompatibleCombination(f"method {cls.name} needs a teacher and the pair has none")
        if len(teachers) > cls.max_teachers:
            raise IncompatibleCombination(
                f"method {cls.name} takes at most {cls.max_teachers} teacher(s), the pair names {len(teachers)}"
            )
        if cls.data_free and cls.fit is Method.fit:
            raise IncompatibleCombination(f"method {cls.name} is declared data-free but leaves its training to "
                                          "the engine, whose loop reads training batches: it must own fit")
        for teacher in teachers:
            if cls.needs in ("features", "model") and teacher.black_box:
                raise IncompatibleCombination(
                    f"method {cls.name} needs the teacher's {cls.needs}; teacher {teacher.name} is black-box"
                )

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the parameter when a value makes no sense (e.g. T = 0)."""

    def prepare_student(self, student: nn.Module) -> None:
        """Called once before training. A method that starts the student from the teacher
        (step distillation copies its weights) does it here; by default the student keeps its
        fresh initialisation."""

    def setup(self, student: ModelOutput, teachers: list[ModelOutput]) -> None:
        """Called once with outputs on a sample batch, before the optimiser is built.

        Methods that need shapes (adapters from student to teacher features) create
        their modules here.
        """

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch; the engine minimises their sum.

        ``teachers`` holds each teacher's outputs on the batch, in the pair's order (empty
        without a teacher).
        """
        raise NotImplementedError

    def after_step(self, student: nn.Module) -> None:
        """Called after each optimiser step (an exponential moving average of the student)."""

    def train_steps(self) -> int | None:
        """A budget of optimiser steps instead of the recipe's epochs (``None``: the epochs)."""
        return None

    def trained(self, student: nn.Module) -> nn.Module:
        """The model the run evaluates, given the trained student: the student itself by default."""
        return student

    def samples(self) -> dict[str, str]:
        """Text the published page shows with the run, by file name (``clusters.txt``): what the method
        found while training that a reader would rather see than take on trust. Asked once, after the
        test evaluation; none by default."""
        return {}

    def fit(self, context: TrainContext) -> nn.Module | None:
        """Own the whole scheme; return the model to evaluate, or ``None`` to be trained by the engine."""
        return None

