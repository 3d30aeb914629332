"""The loop the step-distillation methods share: a fixed number of Adam steps on clean training batches.

Distillation here runs for a number of optimiser steps (per stage, for progressive
distillation), not epochs: one MNIST epoch would be hundreds of steps, each costing several
network evaluations, and the papers count iterations too. The student recipe gives the
batch size, learning rate and weight decay; the optimiser is Adam, as in both papers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from kdbench import Task, TrainContext, UserError

LOG_EVERY = 50
Loss = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A batch of clean samples and the run's generator -> the loss to minimise."""


def clean_batches(task: Task, context: TrainContext, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Clean training samples (``x0``), batch after batch, reshuffled each epoch, without end."""
    while True:
        for batch in task.batches("train", context.recipe, generator):
            yield batch["x0"]


def optimise(context: TrainContext, network: nn.Module, loss: Loss, iterations: int, batches: Iterator[torch.Tensor],
             generator: torch.Generator, prefix: str, after_step: Callable[[], None] = lambda: None) -> float:
    """Take ``iterations`` Adam steps on ``loss``; log its running mean as ``{prefix}loss``; return the last mean."""
    recipe = context.recipe
    if recipe.optimizer != "adam":
        raise UserError(f"step distillation trains with Adam; the student recipe asks for {recipe.optimizer!r}")
    optimizer = torch.optim.Adam(network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    network.train()
    total, count = 0.0, 0
    for iteration in range(1, iterations + 1):
        value = loss(next(batches), generator)
        if not torch.isfinite(value):
            raise FloatingPointError(f"{prefix}loss is {value.item()} at iteration {iteration}")
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        after_step()
        context.on_batch()
        total, count = total + value.item(), count + 1
        if iteration % LOG_EVERY == 0 or iteration == iterations:
            context.log({f"{prefix}loss": total / count}, iteration)
            mean, total, count = total / count, 0.0, 0
    network.eval()
    return mean
