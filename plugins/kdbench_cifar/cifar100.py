"""CIFAR-100 from its canonical archive, ``<data root>/cifar100/cifar-100-python.tar.gz``.

The archive (Krizhevsky 2009) holds ``cifar-100-python/{train,test,meta}``, each a Python 2
pickle of a dict: ``data`` (N × 3072 uint8, channel-major — 1,024 red, then green, then blue
values, each plane row-major 32 × 32), ``fine_labels``, ``coarse_labels``, ``filenames`` and
``batch_label``; ``meta`` holds ``fine_label_names`` and ``coarse_label_names``. The members are
read straight out of the checked archive (nothing is extracted to disk), and only after its
SHA-256 matched: a pickle is code, so none is read from a file that is not the published one.
"""

from __future__ import annotations

import functools
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdbench import ClassificationTask, DatasetFile, Recipe, UserError, dataset, stratified_split
from kdbench_cifar.augment import crop_flip, normalised_black

ARCHIVE = "cifar-100-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
"""The archive's SHA-256 (169,001,437 bytes) as pytorch/vision pins it for this URL
(``torchvision/prototype/datasets/_builtin/cifar.py``, ``Cifar100``'s ``HttpResource``) and Keras's
``keras/datasets/cifar100.py`` does (``get_file(..., file_hash=...)``); torchvision's
``datasets.CIFAR100`` checks the MD5 eb9058c3a382ffc7106e4002c42a8d85 of the same file."""
CIFAR100_FILES = (DatasetFile(ARCHIVE, SHA256, URL),)
DESCRIPTION = "CIFAR-100: 60,000 32×32 colour images in 100 classes (Krizhevsky 2009)"
LICENCE = "no licence stated; Krizhevsky 2009, 'Learning Multiple Layers of Features from Tiny Images'"

FOLDER = "cifar-100-python"
MEMBERS = ("train", "test", "meta")
NUM_CLASSES = 100
MEAN = (0.5071, 0.4867, 0.4408)
STD = (0.2675, 0.2565, 0.2761)
"""Per-channel mean and std of the training images, as RepDistiller's ``dataset/cifar100.py`` normalises."""

AUGMENTATIONS = {"crop4-flip": functools.partial(crop_flip, fill=normalised_black(MEAN, STD), padding=4)}
"""``crop4-flip``: torchvision's ``RandomCrop(32, padding=4)`` (black border) + ``RandomHorizontalFlip()``."""

RECIPE = Recipe(epochs=240, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                schedule="step", milestones=(150, 180, 210), gamma=0.1, augment="crop4-flip")
"""RepDistiller's ``train_teacher.py`` and ``train_student.py``: 240 epochs, SGD at 0.05 with momentum
0.9, weight decay 5e-4, batches of 64, crop and flip, the rate ×0.1 after epochs 150, 180 and 210.
(MobileNetV2 and ShuffleNet students train at 0.01 there: their model specs ask for it.)"""


class CifarFormatError(UserError):
    """A CIFAR archive whose members are not what the canonical one holds."""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
"""What a pickle of dicts, lists, strings and numpy arrays refers to; nothing else is imported."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refers to {module}.{name}")
        if module.startswith("numpy.") and module.endswith("multiarray"):
            from numpy._core import multiarray  # numpy.core is numpy 2's deprecated alias of numpy._core

            return getattr(multiarray, name)
        return super().find_class(module, name)


def _first_line(error: BaseException) -> str:
    lines = str(error).splitlines()
    return lines[0][:120] if lines else type(error).__name__


def _fail(path: Path, member: str, problem: str) -> CifarFormatError:
    return CifarFormatError(f"dataset 'cifar100': {path}: member {FOLDER}/{member} {problem}; "
                            "replace the archive with the canonical file ('kdbench data fetch cifar100')")


def read_members(path: Path) -> dict[str, dict[bytes, Any]]:
    """The three pickled dicts of the archive at ``path`` (already checked against its SHA-256)."""
    raw: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                folder, _, leaf = name.partition("/")
                if folder == FOLDER and leaf in MEMBERS and member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    raw[leaf] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CifarFormatError(f"dataset 'cifar100': {path} is not a readable tar.gz archive "
                               f"({_first_line(error)})") from None
    out = {}
    for leaf in MEMBERS:
        if leaf not in raw:
            raise _fail(path, leaf, "is missing")
        try:
            content = _Unpickler(io.BytesIO(raw.pop(leaf)), encoding="bytes").load()
        except Exception as error:  # any unpickling failure is a malformed member
            raise _fail(path, leaf, f"is not a readable pickle ({_first_line(error)})") from None
        if not isinstance(content, dict):
            raise _fail(path, leaf, f"holds a {type(content).__name__}, not a dict")
        out[leaf] = content
    return out


def _field(content: dict[bytes, Any], key: bytes, path: Path, member: str) -> Any:
    if key not in content:
        raise _fail(path, member, f"has no {key.decode()!r} entry")
    return content[key]


def _split(content: dict[bytes, Any], path: Path, member: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = _field(content, b"data", path, member)
    labels = _field(content, b"fine_labels", path, member)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise _fail(path, member, f"has 'data' of {type(data).__name__} {shape}, not an N × 3072 uint8 array")
    try:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        raise _fail(path, member, "has 'fine_labels' that are not integers") from None
    if y.ndim != 1 or len(y) != len(data):
        raise _fail(path, member, f"has {len(y)} fine labels for {len(data)} images")
    if len(y) and not (0 <= int(y.min()) and int(y.max()) < NUM_CLASSES):
        raise _fail(path, member, f"has fine labels outside 0..{NUM_CLASSES - 1}")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float().div_(255.0)
    x.sub_(torch.tensor(MEAN).view(1, 3, 1, 1)).div_(torch.tensor(STD).view(1, 3, 1, 1))
    return x, y


def load_cifar100() -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """The normalised train and test images with their fine labels, and the 100 fine class names."""
    path = dataset("cifar100").path(ARCHIVE)
    members = read_members(path)
    names = _field(members["meta"], b"fine_label_names", path, "meta")
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(isinstance(n, bytes) for n in names):
        raise _fail(path, "meta", f"does not list {NUM_CLASSES} fine label names")
    splits = {split: _split(members[split], path, split) for split in ("train", "test")}
    return splits, tuple(n.decode("utf-8", "replace") for n in names)


def build_cifar100(val_size: int = 5000, split_seed: int = 0) -> ClassificationTask:
    """CIFAR-100, fine labels: the 50,000 training images minus ``val_size`` held out for validation
    (stratified, fixed by ``split_seed``; 0 trains on all of them, as RepDistiller does), and the
    10,000 test images.

    ``val_size`` is split among the classes in proportion, rounded per class: 5,000 is exactly 50
    of each class's 500. Default recipes: RepDistiller's (``RECIPE``).
    """
    data, names = load_cifar100()
    x, y = data["train"]
    if not 0 <= val_size < len(y):
        raise UserError(f"cifar100: val_size must lie in [0, {len(y)}), got {val_size}")
    fraction = val_size / len(y)
    parts = stratified_split(y, {"val": fraction, "train": 1 - fraction}, split_seed)
    splits = {"train": (x[parts["train"]], y[parts["train"]]), "val": (x[parts["val"]], y[parts["val"]]),
              "test": data["test"]}
    return ClassificationTask(splits, num_classes=NUM_CLASSES, recipes={"teacher": RECIPE, "student": RECIPE},
                              augmentations=AUGMENTATIONS, class_names=names)
