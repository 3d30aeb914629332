"""The model contract: a spec that builds an ``nn.Module`` for a task.

Every model returns ``ModelOutput(output, features)``: its output (logits, scores,
a noise prediction, heatmaps) and a dict of named intermediate features
(``stage1..N``, ``embedding``, and optionally ``stem``, the input layer's map, which is no
stage), so feature and relation methods never reach into an architecture or pick features by
list index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from kdbench.errors import IncompatibleCombination
from kdbench.task import Task


class ModelOutput(NamedTuple):
    output: Any
    features: dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """What a plugin registers through ``kdbench_teachers`` / ``kdbench_students``."""

    name: str
    build: Callable[[Task], nn.Module]
    kinds: tuple[str, ...]
    """Task kinds the model serves."""
    modalities: tuple[str, ...] = ()
    """Modalities it fits; empty means any modality of its kinds."""
    reads: str | None = None
    """The batch entry it needs (e.g. 'lidar'); ``None`` reads whatever the task gives its role."""
    black_box: bool = False
    """As a teacher, expose logits only: feature-based methods are skipped against it."""
    pretrained: bool = False
    """``build`` returns trained weights (a published model). As a teacher its run evaluates and
    measures it without training it, since training would make it another teacher; it writes no
    checkpoint, and the runs that learn from it build it again."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """Recipe changes this architecture asks for (applied before the suite's overrides)."""
    description: str = ""

    def check(self, task: Task, modality: str, role: str) -> None:
        """Raise ``IncompatibleCombination`` when this model cannot play ``role`` on ``task``."""
        if task.kind not in self.kinds:
            raise IncompatibleCombination(
                f"model {self.name} serves {'/'.join(self.kinds)} tasks, not {task.kind}"
            )
        if self.modalities and modality not in self.modalities:
            raise IncompatibleCombination(
                f"model {self.name} fits {'/'.join(self.modalities)} data, not {modality}"
            )
        if self.reads is not None and task.inputs[role] != self.reads:
            raise IncompatibleCombination(
                f"model {self.name} reads '{self.reads}' but the task gives the {role} "
                f"'{task.inputs[role]}'"
            )
