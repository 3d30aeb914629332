"""The yardstick for MNIST samples: a small CNN classifier, trained once, frozen, cached and hashed.

Inception features mean nothing on 32×32 digits and would need a download; a classifier trained
on MNIST's own training images sees what makes a digit. It is trained deterministically (fixed
seed, two epochs, about two minutes on one thread), stored under ``kdbench.cache_dir()`` keyed
by its recipe, and every evaluation logs the SHA-256 of its weights (the first 48 bits, exact
as a float metric) and its test accuracy, so numbers measured with different yardsticks are
never compared unknowingly. Its 128-d penultimate activations are the features FD and KID use.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import cache_dir

RECIPE = {"version": 1, "epochs": 2, "batch_size": 128, "lr": 1e-3, "seed": 0}
FEATURES = 128


class DigitClassifier(nn.Module):
    """Two conv blocks and a 128-d feature layer; ``forward`` gives features, ``logits`` the class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)
        self.num_features = FEATURES

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


def weights_sha256(network: nn.Module) -> str:
    """SHA-256 over the state dict's tensors, in key order."""
    digest = hashlib.sha256()
    for key, value in sorted(network.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_classifier(images: torch.Tensor, labels: torch.Tensor) -> DigitClassifier:
    """Adam on cross-entropy, the fixed ``RECIPE``; deterministic for a given thread count."""
    generator = torch.Generator().manual_seed(RECIPE["seed"])
    with torch.random.fork_rng():
        torch.manual_seed(RECIPE["seed"])
        network = DigitClassifier()
    optimizer = torch.optim.Adam(network.parameters(), lr=RECIPE["lr"])
    for _ in range(RECIPE["epochs"]):
        for index in torch.randperm(len(images), generator=generator).split(RECIPE["batch_size"]):
            loss = F.cross_entropy(network.logits(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return network.eval()


def load_classifier(train: tuple[torch.Tensor, torch.Tensor]) -> DigitClassifier:
    """The cached classifier for this recipe, trained on ``train`` (images, labels) on first use."""
    key = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "diffusion" / f"mnist-classifier-{key}.pt"
    network = DigitClassifier()
    if path.is_file():
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return network.eval()
    network = train_classifier(*train)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        torch.save(network.state_dict(), out)
    os.replace(temporary, path)
    return network


@torch.no_grad()
def accuracy(network: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    predictions = torch.cat([network.logits(chunk).argmax(1) for chunk in images.split(1000)])
    return float((predictions == labels).float().mean())


@torch.no_grad()
def confidence(network: DigitClassifier, images: torch.Tensor) -> float:
    """Mean top-class probability: how surely generated samples read as some digit."""
    probabilities = torch.cat([network.logits(chunk).softmax(1) for chunk in images.split(1000)])
    return float(probabilities.max(1).values.mean())
