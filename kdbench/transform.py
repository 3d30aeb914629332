"""The student-transform contract: what compression does to a student, around any method.

Users distil to deploy, so the question a compression suite answers is what distillation adds on
top of quantising or pruning the student, not beside it. A transform changes the student a
method trains: before training (fake-quantised layers for quantisation-aware training), after it
(conversion to int8, structured pruning), and optionally with a fine-tuning phase after that
change, by the same method (a pruned student is fine-tuned with its distillation loss, or alone
for the baseline). The suite lists transforms per case (``transforms: [fp32, int8-dynamic,
pruned-0.5]``); every student row is run under each, so the table holds each transform with and
without distillation. ``fp32`` is the absence of a transform: its rows keep the keys they had
before transforms existed.

A plugin registers transform classes through ``kdbench_transforms``. A class whose
``argument`` is set takes a number written after its name (``pruned-0.5``: sparsity 0.5).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from kdbench.errors import SuiteError
from kdbench.recipe import Recipe

if TYPE_CHECKING:  # annotations only: a suite's transforms are read without importing torch
    from torch import nn

    from kdbench.method import Method
    from kdbench.model import ModelSpec
    from kdbench.task import Task

NO_TRANSFORM = "fp32"
"""The name a suite writes for the student as trained: no transform."""


class StudentTransform:
    """One way of compressing a student; an instance is one setting of it (``pruned-0.5``).

    Subclasses set ``name`` (and ``argument``, the meaning of the number after it) and override
    the steps they need; each default leaves the model as it is.
    """

    name: ClassVar[str] = ""
    argument: ClassVar[str | None] = None
    """What the number in ``<name>-<number>`` is (e.g. 'sparsity'); ``None``: the name stands alone."""
    description: ClassVar[str] = ""
    cpu_only: ClassVar[bool] = False
    """Its compressed model runs on the CPU only (int8 kernels): n/a when the run is on a GPU."""

    def __init__(self, value: float | None = None) -> None:
        self.value = value

    @property
    def label(self) -> str:
        """The name a suite writes and a leaderboard row shows."""
        return self.name if self.value is None else f"{self.name}-{self.value:g}"

    @property
    def backend(self) -> str:
        """Which implementation does the work (e.g. 'torch.ao quantize_dynamic'), shown with the row:
        the same name may be served by different libraries, chosen by measurement."""
        return ""

    def check(self, task: Task, student: ModelSpec, method: type[Method]) -> None:
        """Raise ``IncompatibleCombination`` when this transform cannot apply to the combination."""

    def before_training(self, model: nn.Module, task: Task) -> nn.Module:
        """The student the method trains (quantisation-aware training swaps layers here)."""
        return model

    def after_training(self, model: nn.Module, task: Task) -> nn.Module:
        """The trained student compressed (conversion to int8, pruning)."""
        return model

    def fine_tune(self, recipe: Recipe) -> Recipe | None:
        """The recipe of a fine-tuning phase after ``after_training`` (by the same method, without its
        ``prepare_student``), or ``None`` for none."""
        return None

    def config(self) -> dict[str, Any]:
        """What enters the run's config (so its key): the transform's name and value."""
        return {"name": self.name, "value": self.value}


def parse(label: str, classes: dict[str, type[StudentTransform]], where: str) -> StudentTransform | None:
    """The transform a suite names (``None`` for ``fp32``); a name or number that is not one is a
    ``SuiteError`` naming ``where``."""
    if label == NO_TRANSFORM:
        return None
    if label in classes and classes[label].argument is None:
        return classes[label]()
    match = re.fullmatch(r"(.+)-([0-9]*\.?[0-9]+)", label)
    if match and match.group(1) in classes and classes[match.group(1)].argument is not None:
        try:
            return classes[match.group(1)](float(match.group(2)))
        except ValueError as error:  # the class refuses the number (a sparsity of 1.5)
            raise SuiteError(f"{where}: transform '{label}': {error}") from None
    if label in classes:
        raise SuiteError(f"{where}: transform '{label}' takes its {classes[label].argument} after a dash, "
                         f"e.g. '{label}-0.5'")
    from kdbench.registry import unknown_name_message

    known = [NO_TRANSFORM] + [name if cls.argument is None else f"{name}-<{cls.argument}>"
                              for name, cls in classes.items()]
    raise SuiteError(f"{where}: {unknown_name_message('transform', label, known)}")
