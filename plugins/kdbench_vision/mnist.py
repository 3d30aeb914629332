"""MNIST and Fashion-MNIST, each from its four canonical gzip-compressed IDX files under
``<data root>/<dataset>``: the same layout, size and split, so one loader serves both."""

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
_FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = tuple(
    DatasetFile(name, sha, _FASHION_MIRROR + name)
    for name, sha in [
        ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ]
)
NORMALISATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
"""Each training set's pixel mean and standard deviation (on [0, 1]), as their training scripts
conventionally normalise them."""
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
"""Fashion-MNIST's label names, in label order (its README)."""


def load_idx_images(name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The training and test splits of dataset ``name``, images normalised by its training statistics."""
    spec = dataset(name)
    mean, std = NORMALISATION[name]
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(spec.path(f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(spec.path(f"{prefix}-labels-idx1-ubyte.gz"))
        x = (torch.from_numpy(images.copy()).float().unsqueeze(1) / 255.0 - mean) / std
        out[split] = (x, torch.from_numpy(labels.astype(np.int64)))
    return out


def _build(name: str, val_size: int, split_seed: int, **info: object) -> ClassificationTask:
    """The 60,000 training images minus ``val_size`` held out (fixed by ``split_seed``) for validation."""
    if not 0 <= val_size < 60000:
        raise UserError(f"{name}: val_size must lie in [0, 60000), got {val_size}")
    data = load_idx_images(name)
    x, y = data["train"]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:val_size].sort().values, order[val_size:].sort().values
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": data["test"]}
    recipe = Recipe(epochs=20, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9)
    return ClassificationTask(splits, num_classes=10, recipes={"teacher": recipe, "student": recipe},
                              augmentations=AUGMENTATIONS, **info)


def build_mnist(val_size: int = 5000, split_seed: int = 0) -> ClassificationTask:
    return _build("mnist", val_size, split_seed)


def build_fashion_mnist(val_size: int = 5000, split_seed: int = 0) -> ClassificationTask:
    return _build("fashion-mnist", val_size, split_seed, class_names=FASHION_CLASSES)
