"""The 2-D toy: eight Gaussians on a circle, where the data density is known in closed form.

Samples are scored with the Fréchet distance on the raw coordinates and with their exact mean
negative log-likelihood under the true mixture (``nll``), so a sampler's distance to the data
is measured without any learnt yardstick. Cheap enough for the smoke suite and the unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Recipe, Task, UserError
from kdbench_diffusion.frechet import Coordinates, SampleQuality
from kdbench_diffusion.schedule import TIMESTEPS
from kdbench_diffusion.task import DenoisingTask

MODES = 8
RADIUS = 2.0
STD = 0.1
TRAIN_SEED, TEST_SEED = 0, 1


def centres() -> torch.Tensor:
    angles = torch.arange(MODES) * (2 * math.pi / MODES)
    return RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)


def draw(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    modes = torch.randint(0, MODES, (n,), generator=generator)
    return centres()[modes] + STD * torch.randn((n, 2), generator=generator)


def nll(points: torch.Tensor) -> torch.Tensor:
    """Exact negative log-density of each point under the mixture (equal weights, isotropic σ)."""
    squared = torch.cdist(points.double(), centres().double()).pow(2)
    log_normal = -squared / (2 * STD**2) - math.log(2 * math.pi * STD**2)
    return -(torch.logsumexp(log_normal, dim=1) - math.log(MODES))


def build_toy(samples: int = 2000, train_size: int = 8192, test_size: int = 8192, steps: Sequence[int] = (1, 2, 4, 8),
              primary_steps: int = 4, teacher_steps: int = 64) -> DenoisingTask:
    """Fixed training and test draws; ``samples`` generated points are scored per step count."""
    if train_size < 1 or test_size < 2:
        raise UserError(f"toy-8gaussians: train_size must be ≥ 1 and test_size ≥ 2, got {train_size}, {test_size}")
    test = draw(test_size, TEST_SEED)
    recipes = {"teacher": Recipe(epochs=30, batch_size=256, optimizer="adam", lr=2e-3),
               "student": Recipe(epochs=1, batch_size=256, optimizer="adam", lr=5e-4)}
    return DenoisingTask(draw(train_size, TRAIN_SEED), test, SampleQuality(test, Coordinates(2)),
                         lambda points: {"nll": float(nll(points).mean())}, recipes, samples=samples,
                         steps=list(steps), primary_steps=primary_steps, teacher_steps=teacher_steps)


class PointDenoiser(nn.Module):
    """An MLP on (x_t, sinusoidal features of t): v for 2-D points."""

    def __init__(self, dims: int = 2, hidden: int = 128, frequencies: int = 8) -> None:
        super().__init__()
        self.register_buffer("frequencies", 2.0 ** torch.arange(frequencies) * math.pi)
        self.body = nn.Sequential(nn.Linear(dims + 2 * frequencies, hidden), nn.SiLU(),
                                  nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.head = nn.Linear(hidden, dims)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
        phase = (t.float() / TIMESTEPS)[:, None] * self.frequencies
        embedding = self.body(torch.cat([x_t, phase.sin(), phase.cos()], dim=1))
        return ModelOutput(self.head(embedding), {"embedding": embedding})


def build_point_denoiser(task: Task) -> nn.Module:
    return PointDenoiser(dims=task.info["input_shape"][0])


POINT_MLP = ModelSpec("mlp-points", build_point_denoiser, kinds=("denoising",), modalities=("points",),
                      description="3×128 SiLU MLP with sinusoidal timestep features (2-D toy)")
