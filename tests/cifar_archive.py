"""CIFAR-100 archives in exactly the canonical format, written by the tests themselves (no download):
the loader's tests use tiny ones, the GPU check a larger one of random images."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CLASSES = [0, 3, 7, 19, 42, 50, 63, 77, 88, 99]
"""The tiny archive's fine classes: ten of the hundred, 20 training and 5 test images each."""
N_TRAIN, N_TEST = 200, 50
ROOT = "cifar-100-python"


def tiny_members(seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST) -> dict[str, dict[bytes, object]]:
    """``train``, ``test`` and ``meta`` as the canonical archive holds them, with 200 / 50 images by default.

    Image i of train and of test carries its number i in its red plane's pixels (0, 0) and (0, 1);
    test image 0 holds a known pattern: red (y·32 + x) mod 256, green 255 minus that, blue 7.
    """
    rng = np.random.default_rng(seed)
    members: dict[str, dict[bytes, object]] = {}
    for split, count in (("train", n_train), ("test", n_test)):
        labels = np.repeat(CLASSES, count // len(CLASSES))
        rng.shuffle(labels)
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        ids = np.arange(count)
        data[:, 0], data[:, 1] = ids % 256, ids // 256
        if split == "test":
            pattern = np.arange(1024) % 256
            data[0, :1024], data[0, 1024:2048], data[0, 2048:] = pattern, 255 - pattern, 7
        members[split] = {
            b"filenames": [f"image_{i:05d}.png".encode() for i in range(count)],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": [int(v) for v in labels],
            b"coarse_labels": [int(v) // 5 for v in labels],
            b"data": data,
        }
    members["meta"] = {b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
                       b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)]}
    return members


def write_archive(path: Path, members: dict[str, object], raw: dict[str, bytes] | None = None) -> str:
    """A tar.gz laid out as the canonical one (a ``cifar-100-python`` folder holding one pickle per
    member; protocol 2, as the Python 2 originals); ``raw`` members are written as given. Its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        folder = tarfile.TarInfo(ROOT)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        contents = {name: pickle.dumps(value, protocol=2) for name, value in members.items()} | (raw or {})
        for name, content in contents.items():
            info = tarfile.TarInfo(f"{ROOT}/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return hashlib.sha256(path.read_bytes()).hexdigest()
