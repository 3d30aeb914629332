"""Fréchet distance and KID of generated samples, with torchmetrics on a frozen feature network.

torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` take any
``nn.Module`` with a ``num_features`` attribute in place of Inception, so nothing is
downloaded: MNIST uses a small classifier trained by this plugin, the 2-D toy the raw
coordinates (where the Fréchet distance is the exact closed form between the two sets'
Gaussian moments). The reference set's features are computed once and kept.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 0
"""KID averages over random subsets; a fixed seed makes it a function of the two sets alone."""


class Coordinates(nn.Module):
    """The identity feature map on flattened samples (for low-dimensional toy data)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.num_features = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def freeze(network: nn.Module) -> nn.Module:
    """Evaluation mode and no gradients: the yardstick must not move while it measures."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval()


class SampleQuality:
    """FD and KID against a fixed reference set; call it with a batch of generated samples."""

    def __init__(self, reference: torch.Tensor, features: nn.Module, chunk: int = 1000) -> None:
        self.features = freeze(features)
        self.chunk = chunk
        from torchmetrics.image.fid import FrechetInceptionDistance  # slow to import: on use only
        from torchmetrics.image.kid import KernelInceptionDistance

        self.fid = FrechetInceptionDistance(feature=self.features, reset_real_features=False)
        with warnings.catch_warnings():  # keeping every feature is the point: KID draws subsets from them
            warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save all extracted features")
            self.kid = KernelInceptionDistance(feature=self.features, reset_real_features=False, subsets=KID_SUBSETS)
        self.reference_size = len(reference)
        self._update(reference, real=True)

    @torch.no_grad()
    def _update(self, samples: torch.Tensor, real: bool) -> None:
        for part in samples.split(self.chunk):
            self.fid.update(part, real=real)
            self.kid.update(part, real=real)

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        """``fd`` and ``kid`` (the mean polynomial-kernel MMD² over subsets) of ``samples``."""
        freeze(self.features)  # whatever its holder did with it since
        self.fid.reset()
        self.kid.reset()
        self._update(samples, real=False)
        self.kid.subset_size = min(KID_SUBSET_SIZE, len(samples), self.reference_size)
        with torch.random.fork_rng():
            torch.manual_seed(KID_SEED)
            kid, _ = self.kid.compute()
        return {"fd": float(self.fid.compute()), "kid": float(kid)}
