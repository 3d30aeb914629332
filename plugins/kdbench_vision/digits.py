"""scikit-learn's bundled 8×8 digits: the quickstart task, needing no data root or network."""

from __future__ import annotations

import torch

from kdbench import ClassificationTask, Recipe, stratified_split
from kdbench_vision.augment import AUGMENTATIONS


def build_digits(split_seed: int = 0) -> ClassificationTask:
    """A fixed stratified 70/10/20 train/val/test split (the seed of the split, not of runs)."""
    from sklearn.datasets import load_digits  # scikit-learn loads in seconds: only for this task

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    parts = stratified_split(labels, {"train": 0.7, "val": 0.1, "test": 0.2}, split_seed)
    splits = {name: (images[index], labels[index]) for name, index in parts.items()}
    recipe = Recipe(epochs=30, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4)
    return ClassificationTask(splits, num_classes=10, recipes={"teacher": recipe, "student": recipe},
                              augmentations=AUGMENTATIONS)
