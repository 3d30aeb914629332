"""The method contract: a distillation algorithm is one short class — its loss.

A method is an ``nn.Module`` so that whatever it creates to learn with (adapters,
projection heads, memory banks) is owned by it, counted, and optimised together with
the student. The generic trainer sums the dict that ``loss`` returns and logs each
term. A method whose scheme does not fit the generic loop (peers trained together,
born-again generations, progressive step halving) overrides ``fit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from kdbench.errors import IncompatibleCombination
from kdbench.model import ModelOutput, ModelSpec
from kdbench.task import Batch, Task

if TYPE_CHECKING:
    from kdbench.training import TrainContext

SCHEMES = ("none", "offline", "online", "self")
NEEDS = ("none", "logits", "features")


class Method(nn.Module):
    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    """Task kinds the method makes sense for."""
    scheme: ClassVar[str] = "offline"
    """'none' (no teacher), 'offline' (frozen teacher), 'online' (peers) or 'self'."""
    needs: ClassVar[str] = "logits"
    """What it reads from the teacher: 'none', 'logits' (black-box is enough) or 'features'."""
    defaults: ClassVar[dict[str, Any]] = {}
    """Hyper-parameters and their paper defaults; a suite may set or grid over these keys."""
    max_teachers: ClassVar[int] = 1
    """More than 1: the method takes a list of teachers (and gets lists of their outputs)."""
    baseline: ClassVar[bool] = False
    """Its rows are the baseline the leaderboard measures gain and gap closed against: what the
    student gets without distillation ('student-only'; for step distillation, the teacher
    sampled with N steps, 'ddim-n')."""

    def __init__(self, task: Task, student: nn.Module, teacher: nn.Module | list[nn.Module] | None,
                 **params: Any):
        super().__init__()
        self.task = task
        self.params = {**self.defaults, **params}
        for key, value in self.params.items():
            setattr(self, key.replace("-", "_"), value)
        self.epoch = 0
        """Set by the trainer at the start of each epoch (for warm-ups and schedules)."""
        self.epochs = 0
        """Set by the trainer: the run's number of epochs, so a warm-up can scale with the run."""

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        """Raise ``IncompatibleCombination`` when the method cannot run on this combination."""
        if task.kind not in cls.kinds:
            raise IncompatibleCombination(
                f"method {cls.name} supports {'/'.join(cls.kinds)} tasks, not {task.kind}"
            )
        if cls.scheme == "offline" and not teachers:
            raise IncompatibleCombination(f"method {cls.name} needs a teacher and the pair has none")
        if len(teachers) > cls.max_teachers:
            raise IncompatibleCombination(
                f"method {cls.name} takes at most {cls.max_teachers} teacher(s), the pair names {len(teachers)}"
            )
        for teacher in teachers:
            if cls.needs == "features" and teacher.black_box:
                raise IncompatibleCombination(
                    f"method {cls.name} needs teacher features; teacher {teacher.name} is black-box"
                )

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming the parameter when a value makes no sense (e.g. T = 0)."""

    def setup(self, student_out: ModelOutput, teacher_out: ModelOutput | None) -> None:
        """Called once with outputs on a sample batch, before the optimiser is built.

        Methods that need shapes (adapters from student to teacher features) create
        their modules here.
        """

    def loss(
        self, batch: Batch, student: ModelOutput, teacher: ModelOutput | list[ModelOutput] | None
    ) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch; the trainer minimises their sum.

        ``teacher`` is ``None`` without a teacher, a list when ``max_teachers > 1``.
        """
        raise NotImplementedError

    def fit(self, context: TrainContext) -> nn.Module | None:
        """Own the whole training loop; return the trained student, or ``None`` to use the generic one."""
        return None
