"""Structured pruning: whole channels cut out of the trained student, so that it is smaller as stored
and cheaper to run, not merely sparse.

torch-pruning traces the model and slices every tensor a channel touches together (the layer making
it, its BatchNorm, the layers reading it), ranking a group's channels by the L2 norm of their weights.
Every prunable group loses the same fraction of its channels; the fraction is searched so that the
*parameter count* falls by the sparsity asked, since that is what a reader compares. Unstructured
masks are not offered: dense storage keeps their zeros, so the saved model would be no smaller.
"""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, Recipe, StudentTransform, Task, call_model

SEARCH_STEPS = 16
"""Bisection steps over the channel fraction: 2**-16 resolves a single channel in layers of up to 65,536."""

TOLERANCE = 0.05
"""How far from its target the kept parameter count may land, as a share of the target, before the
model is refused: its channels are too few, or its output layer too large, to cut it as asked. The
search lands within 2 % on the built-in students but cnn-small (8-16-32 channels, 2.4 % at 0.3),
whose channels are coarse steps."""


def parameter_count(model: nn.Module) -> int:
    """Parameters as the runner counts them (shared ones once)."""
    return sum(p.numel() for p in model.parameters())


def _traced(output: ModelOutput) -> list[torch.Tensor]:
    """What the trace follows back from: the output first, so that the layers making it are known as
    the output layer, then the features, so that a layer only a feature reads shrinks with its input."""
    tensors = [output.output, *output.features.values()]
    return [t for t in tensors if isinstance(t, torch.Tensor) and t.grad_fn is not None]


def _layout(model: nn.Module, sample: Any) -> tuple[list[str], int]:
    """The names of the layers whose channels are what the model returns (a classifier's classes, a
    vocabulary: their group reaches an end of the graph, so cutting it would change the output), and
    the fewest channels any other group has (past ``1 - 1/n`` torch-pruning would empty that group, so
    it skips it and the count grows again)."""
    graph = tp.DependencyGraph().build_dependency(model, sample, forward_fn=call_model, output_transform=_traced)
    names = {module: name for name, module in model.named_modules()}
    kept, channels = [], []
    for group in graph.get_all_groups():
        root = group[0].dep.target.module
        if any(not dep.target.outputs and graph.is_out_channel_pruning_fn(dep.handler) for dep, _ in group):
            kept.append(names[root])
        elif graph.get_out_channels(root) > 1:
            channels.append(graph.get_out_channels(root))
    return kept, min(channels, default=1)


def _sliced(model: nn.Module, sample: Any, ratio: float, kept: list[str]) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of every prunable group's channels cut."""
    pruned = copy.deepcopy(model)
    pruner = tp.pruner.BasePruner(pruned, sample, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=[pruned.get_submodule(n) for n in kept],
                                  forward_fn=call_model, output_transform=_traced)
    pruner.step()
    return pruned


def _require_same_interface(model: nn.Module, pruned: nn.Module, sample: Any) -> None:
    """Refuse a cut the trace got wrong (an op it took for element-wise, a reshape by heads): the pruned
    model must run and answer as the original did, but for narrower features."""
    with torch.no_grad():
        before, after = call_model(model, sample), call_model(pruned, sample)
    if after.output.shape != before.output.shape or after.features.keys() != before.features.keys():
        raise RuntimeError(f"the output changed from {tuple(before.output.shape)} to {tuple(after.output.shape)}"
                           " or the features' names changed")


def prune(model: nn.Module, sample: Any, sparsity: float, label: str) -> nn.Module:
    """A copy of ``model`` keeping ``1 - sparsity`` of its parameters, as close as a channel fraction
    found by bisection gets; ``IncompatibleCombination`` where torch-pruning cannot cut it, or not to
    within ``TOLERANCE``."""
    name = type(model).__name__
    total = parameter_count(model)
    target = (1 - sparsity) * total
    work = copy.deepcopy(model)  # tracing puts a model in eval mode: the caller's keeps its own
    try:
        with torch.enable_grad():  # torch-pruning traces through autograd
            kept, fewest = _layout(work, sample)
            low, high = 0.0, 1 - 1 / fewest
            best = work
            for _ in range(SEARCH_STEPS):
                ratio = (low + high) / 2
                candidate = _sliced(work, sample, ratio, kept)
                count = parameter_count(candidate)
                if abs(count - target) < abs(parameter_count(best) - target):
                    best = candidate
                low, high = (ratio, high) if count > target else (low, ratio)
            _require_same_interface(work, best, sample)
    except Exception as error:  # torch-pruning's tracing fails in many ways; the reason is what matters
        reason = str(error).splitlines()[0] if str(error) else ""
        raise IncompatibleCombination(f"{label}: torch-pruning cannot cut {name}'s channels "
                                      f"({type(error).__name__}: {reason})") from None
    if abs(parameter_count(best) - target) > TOLERANCE * target:
        raise IncompatibleCombination(f"{label}: pruning {name}'s channels keeps {parameter_count(best) / total:.1%} "
                                      f"of its parameters at closest, not {1 - sparsity:.0%}")
    return best.train(model.training)


class Pruned(StudentTransform):
    """Structured channel pruning of the trained student, then fine-tuning by its own method: pruning
    removes learned channels, so the student is fine-tuned for half its epochs."""

    name = "pruned"
    argument = "sparsity"
    description = ("structured channel pruning removing the given share of parameters (L2 magnitude), "
                   "then fine-tuning for half the epochs")

    def __init__(self, value: float | None = None) -> None:
        if value is None or not 0 < value < 1:
            raise ValueError(f"sparsity is the share of parameters removed, strictly between 0 and 1, not {value}")
        super().__init__(value)

    @property
    def backend(self) -> str:
        return (f"torch-pruning {importlib.metadata.version('torch-pruning')}: "
                "dependency-aware channel slicing, L2 magnitude importance")

    def before_training(self, model: nn.Module, task: Task) -> nn.Module:
        prune(model, task.latency_input("student"), self.value, self.label)  # refused now, not after training
        return model

    def after_training(self, model: nn.Module, task: Task) -> nn.Module:
        return prune(model, task.latency_input("student"), self.value, self.label)

    def fine_tune(self, recipe: Recipe) -> Recipe | None:
        """Pruning removes learned channels, so the student is fine-tuned by its own method (its
        distillation loss, or none for the baseline) for half its epochs."""
        return recipe.updated({"epochs": max(1, recipe.epochs // 2)})
