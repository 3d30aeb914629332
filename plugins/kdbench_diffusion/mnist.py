"""MNIST for diffusion: the canonical IDX files of the ``mnist`` dataset (declared by the vision plugin, found by
name so that the files are declared once), padded to 32×32 in [−1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kdbench import Recipe, dataset, read_idx
from kdbench_diffusion.classifier import accuracy, confidence, load_classifier, weights_sha256
from kdbench_diffusion.frechet import SampleQuality, freeze
from kdbench_diffusion.task import DenoisingTask


def load_split(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as (n, 1, 32, 32) floats in [−1, 1] (two background pixels on each side), and labels."""
    spec = dataset("mnist")
    images = torch.from_numpy(read_idx(spec.path(f"{prefix}-images-idx3-ubyte.gz")).copy())
    labels = torch.from_numpy(read_idx(spec.path(f"{prefix}-labels-idx1-ubyte.gz")).astype("int64"))
    scaled = images.float().unsqueeze(1) / 127.5 - 1
    return F.pad(scaled, (2, 2, 2, 2), value=-1.0), labels


def build_mnist_diffusion(samples: int = 10_000, steps: Sequence[int] = (1, 2, 4, 8), primary_steps: int = 4,
                          teacher_steps: int = 64) -> DenoisingTask:
    """All 60,000 training images train the denoiser; ``samples`` generated images are scored against the 10,000
    test images."""
    train, test = load_split("train"), load_split("t10k")
    classifier = freeze(load_classifier(train))
    fingerprint = {"feature_net_sha48": float(int(weights_sha256(classifier)[:12], 16)),
                   "feature_net_accuracy": accuracy(classifier, *test)}
    recipes = {"teacher": Recipe(epochs=4, batch_size=128, optimizer="adam", lr=5e-4),
               "student": Recipe(epochs=1, batch_size=64, optimizer="adam", lr=2e-4)}
    return DenoisingTask(train[0], test[0], SampleQuality(test[0], classifier),
                         lambda images: {"confidence": confidence(classifier, images)}, recipes,
                         samples=samples, steps=steps, primary_steps=primary_steps, teacher_steps=teacher_steps,
                         fingerprint=fingerprint)
