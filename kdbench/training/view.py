"""What a method's loss sees at each training step.

The default is what a classification or dense task needs: the batch as the task made it,
the student's outputs on it and each teacher's. A task kind whose methods learn from more
than the batch holds gives its methods a view of its own, in the plugin that owns the kind:
a ranking batch extended with the items a method draws each epoch, a graph's whole-graph
outputs beside its labelled nodes, a denoising batch noised at a method's own timesteps.
So such a method is still one ``loss``; the loop stays the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from kdbench.model import ModelOutput
from kdbench.model_call import call_model
from kdbench.task import Batch

if TYPE_CHECKING:
    from kdbench.training.context import TrainContext


class TrainingView:
    def __init__(self, context: TrainContext, generator: torch.Generator) -> None:
        """``generator`` is the run's training stream (it shuffles the batches): draws a view makes
        per step come from it, so a run's randomness is one reproducible sequence."""
        self.context = context
        self.task = context.task
        self.generator = generator

    def epoch_start(self, epoch: int) -> None:
        """Called before each epoch's first batch (per-epoch draws go here)."""

    def batch(self, batch: Batch) -> Batch:
        """The batch the step trains on. One whose model inputs differ from the task's must not
        keep its ``index``: cached teacher outputs are looked up by it."""
        return batch

    def student(self, batch: Batch) -> ModelOutput:
        """The trained model's outputs on the step's batch (with gradients)."""
        return call_model(self.context.model, self.task.model_input(batch, self.context.role))

    def teachers(self, batch: Batch) -> list[ModelOutput]:
        """Each teacher's outputs on the step's batch, in the pair's order."""
        return [teacher.outputs(batch) for teacher in self.context.teachers]
