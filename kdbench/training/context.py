"""Everything a training run needs, handed to the engine and to a method that owns its loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from kdbench.recipe import Recipe
from kdbench.task import Task
from kdbench.teacher import Teacher

if TYPE_CHECKING:
    from kdbench.method import Method

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainContext:
    """A run's training inputs. Frozen: a method that trains stages derives its own with
    ``dataclasses.replace`` (another model, method or teacher), the run's stays as it was."""

    task: Task
    model: nn.Module
    role: str
    """The input role the trained model reads: 'teacher' when training a teacher."""
    recipe: Recipe
    seed: int
    method: Method | None = None
    teachers: tuple[Teacher, ...] = ()
    """The frozen teachers the method learns from, in the pair's order (empty without one)."""
    checkpoint: str = "final"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the model, the teachers and each training batch live (``kdbench.device``)."""
    on_epoch: EpochCallback = field(default=lambda epoch, metrics: None)
    """Called after each epoch (or each round of steps) with its metrics: logs them, fires
    ``kdbench_epoch_end`` and moves the progress bar."""
    on_batch: Callable[[], None] = field(default=lambda: None)
    build_model: Callable[[str | None], nn.Module] | None = None
    """Build a fresh model for the task: the student's architecture (``None``) or a named
    teacher/student spec — for methods that train peers, generations or assistants."""
    log: Callable[[dict[str, float], int | None], None] = field(default=lambda metrics, step: None)
    """Log extra metrics to the run (e.g. one series per born-again generation)."""
    fine_tuning: bool = False
    """The model is trained already (a transform's fine-tuning phase, after pruning): the engine
    leaves it as it is instead of asking the method's ``prepare_student``."""

    def generator(self) -> torch.Generator:
        """A fresh generator seeded with the run's seed: a stream of draws of its own."""
        return torch.Generator().manual_seed(self.seed)
