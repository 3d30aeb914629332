"""Classification from in-memory tensors: the base of vision, speech and node tasks.

Plugins give the split tensors, the default recipes and any augmentations; this
class gives batching, the cross-entropy loss and the metrics every classification
leaderboard reports (accuracy, error count, ECE, NLL, teacher agreement).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.recipe import Recipe
from kdbench.task import Batch, Task

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
EVAL_BATCH = 1024


class ClassificationTask(Task):
    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True
    trains_on_subsets = True

    def __init__(
        self,
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
        num_classes: int,
        recipes: dict[str, Recipe],
        augmentations: dict[str, Augmentation] | None = None,
        **info: Any,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.recipes = recipes
        self.augmentations = augmentations or {}
        self._subsets: dict[int, torch.Tensor] = {}
        self.info = {"input_shape": tuple(splits["train"][0].shape[1:]), "num_classes": num_classes, **info}

    @property
    def num_train(self) -> int:
        return len(self.splits["train"][1])

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def has_split(self, split: str) -> bool:
        return split in self.splits and len(self.splits[split][1]) > 0

    def batches(
        self, split: str, recipe: Recipe | None, generator: torch.Generator | None
    ) -> Iterator[Batch]:
        x, y = self.splits[split]
        training = recipe is not None and generator is not None
        size = recipe.batch_size if training else EVAL_BATCH
        positions = torch.arange(len(y))
        if training and split == "train" and recipe.train_examples is not None:
            positions = self._subset(recipe.train_examples)
        if generator is not None:
            positions = positions[torch.randperm(len(positions), generator=generator)]
        augment = None
        if training and recipe.augment is not None:
            augment = self.augmentations[recipe.augment]
        for start in range(0, len(positions), size):
            index = positions[start : start + size]
            inputs = x[index]
            if augment is not None:
                inputs = augment(inputs, generator)
            yield {"x": inputs, "y": y[index], "index": index}

    def _subset(self, count: int) -> torch.Tensor:
        """The training subset of ``count`` examples, drawn once per task (every epoch asks for it)."""
        if count not in self._subsets:
            self._subsets[count] = stratified_subset(self.splits["train"][1], count)
        return self._subsets[count]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(output, batch["y"])

    @torch.no_grad()
    def logits(self, model: nn.Module, split: str, role: str) -> torch.Tensor:
        from kdbench.model_call import call_model

        was_training = model.training
        model.eval()
        outputs = [call_model(model, self.model_input(b, role)).output.cpu() for b in self.batches(split, None, None)]
        model.train(was_training)
        return torch.cat(outputs)

    def evaluate(
        self, model: nn.Module, split: str, role: str, reference: nn.Module | None = None
    ) -> dict[str, float]:
        logits = self.logits(model, split, role)
        labels = self.splits[split][1]
        metrics = classification_metrics(logits, labels)
        if reference is not None:
            agree = self.logits(reference, split, "teacher").argmax(1) == logits.argmax(1)
            metrics["fidelity"] = agree.float().mean().item()
        return metrics


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> dict[str, float]:
    """Accuracy, error count, negative log-likelihood and expected calibration error."""
    probs = logits.float().softmax(1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.float().mean() * (confidence[in_bin].mean() - correct[in_bin].mean()).abs()
    return {
        "accuracy": correct.mean().item(),
        "errors": float((1 - correct).sum().item()),
        "nll": F.cross_entropy(logits.float(), labels).item(),
        "ece": ece.item(),
    }


def stratified_split(labels: torch.Tensor, fractions: dict[str, float], seed: int) -> dict[str, torch.Tensor]:
    """Index sets per split with each class spread in proportion; the last split gets the rest."""
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in fractions}
    for cls in labels.unique():
        members = (labels == cls).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        names = list(fractions)
        for i, name in enumerate(names):
            stop = len(members) if i == len(names) - 1 else start + round(fractions[name] * len(members))
            parts[name].append(members[start:stop])
            start = stop
    return {name: torch.cat(chunks).sort().values for name, chunks in parts.items()}


def stratified_subset(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` sample positions with the classes in proportion, the same for a given seed.

    Each class is shuffled and its members ranked by their place in it, as a fraction of the
    class's size; the ``count`` lowest ranks are taken, so every prefix of the ranking is as
    stratified as whole samples allow and the total is exactly ``count``.
    """
    if not 0 < count <= len(labels):
        raise ValueError(f"cannot draw {count} of {len(labels)} training examples")
    generator = torch.Generator().manual_seed(seed)
    rank = torch.empty(len(labels))
    for cls in labels.unique():
        members = (labels == cls).nonzero().flatten()
        shuffled = members[torch.randperm(len(members), generator=generator)]
        rank[shuffled] = (torch.arange(len(members)) + 0.5) / len(members)
    return torch.sort(rank, stable=True).indices[:count].sort().values
