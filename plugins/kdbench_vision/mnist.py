"""MNIST from the four canonical gzip-compressed IDX files under ``<data root>/mnist``."""

from __future__ import annotations

import numpy as np
import torch

from kdbench import ClassificationTask, DatasetFile, Recipe, UserError, dataset, read_idx
from kdbench_vision.augment import AUGMENTATIONS

_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = tuple(
    DatasetFile(name, sha, _MIRROR + name)
    for name, sha in [
        ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]
)
MEAN, STD = 0.1307, 0.3081


def load_mnist() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    spec = dataset("mnist")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(spec.path(f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(spec.path(f"{prefix}-labels-idx1-ubyte.gz"))
        x = (torch.from_numpy(images.copy()).float().unsqueeze(1) / 255.0 - MEAN) / STD
        out[split] = (x, torch.from_numpy(labels.astype(np.int64)))
    return out


def build_mnist(val_size: int = 5000, split_seed: int = 0) -> ClassificationTask:
    """The 60,000 training images minus ``val_size`` held out (fixed by ``split_seed``) for validation."""
    if not 0 <= val_size < 60000:
        raise UserError(f"mnist: val_size must lie in [0, 60000), got {val_size}")
    data = load_mnist()
    x, y = data["train"]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:val_size].sort().values, order[val_size:].sort().values
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": data["test"]}
    recipe = Recipe(epochs=20, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9)
    return ClassificationTask(splits, num_classes=10, recipes={"teacher": recipe, "student": recipe},
                              augmentations=AUGMENTATIONS)
