"""Diffusion: step distillation — how good are a sampler's samples at N steps?

Tasks ``mnist-diffusion`` (MNIST padded to 32×32, scored by Fréchet distance and KID on a frozen
MNIST classifier's features) and ``toy-8gaussians`` (2-D, exact likelihood). Teachers and
students ``unet-mnist`` (diffusers UNet2DModel) and ``mlp-points``. Methods ``ddim-n`` (the
undistilled teacher at N DDIM steps: the baseline), ``progressive`` (Salimans & Ho 2022) and
``consistency`` (Song et al. 2023). The plugin declares the ``denoising`` kind (ddim-n its baseline,
progressive its reference), adds the per-N Fréchet distance columns to leaderboards and their
Fréchet-distance-against-N plot, and draws sample grids as each run's pictures (see ``grids``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdbench import Column, Kind, Method, Metric, ModelSpec, TaskSpec, hookimpl
from kdbench_diffusion.columns import fd_columns
from kdbench_diffusion.consistency import Consistency
from kdbench_diffusion.ddim_n import DDIMN
from kdbench_diffusion.mnist import build_mnist_diffusion
from kdbench_diffusion.progressive import Progressive
from kdbench_diffusion.toy import POINT_MLP, build_toy
from kdbench_diffusion.unet import UNET

STEPS = {"steps": [1, 2, 4, 8], "primary_steps": 4, "teacher_steps": 64}


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [
        TaskSpec("mnist-diffusion", "denoising", "vision", build_mnist_diffusion,
                 "MNIST padded to 32×32 in [−1, 1]; Fréchet distance and KID of generated samples against "
                 "the test set on a frozen MNIST classifier's features, at each sampling step count",
                 options={"samples": 10_000, **STEPS}),
        TaskSpec("toy-8gaussians", "denoising", "points", build_toy,
                 "eight 2-D Gaussians on a circle; Fréchet distance on coordinates and exact likelihood",
                 options={"samples": 2000, "train_size": 8192, "test_size": 8192, **STEPS}),
    ]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [UNET, POINT_MLP]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [UNET, POINT_MLP]


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [DDIMN, Progressive, Consistency]


DENOISING = Kind(
    "denoising", baseline="ddim-n", reference="progressive",
    metrics=(
        Metric("fd", higher_is_better=False, positive=True,
               description="Fréchet distance to the test set at the primary step count"),
        Metric("kid", higher_is_better=False, description="KID on the task's features at the primary step count"),
        Metric("fd_n*", higher_is_better=False, positive=True, description="Fréchet distance at N sampling steps"),
        Metric("kid_n*", higher_is_better=False, description="KID at N sampling steps"),
        Metric("confidence*", higher_is_better=True, description="the MNIST classifier's confidence in the samples"),
        Metric("nll*", higher_is_better=False, description="the toy's exact negative log-likelihood of the samples"),
        Metric("sample_ms*", higher_is_better=False, positive=True, description="CPU milliseconds per sample"),
        Metric("steps", higher_is_better=False, description="the step count of fd and kid (a setting, not a score)"),
        Metric("feature_net_accuracy", higher_is_better=True,
               description="test accuracy of the frozen feature network (the yardstick, not a result)"),
        Metric("feature_net_*", higher_is_better=False,
               description="the frozen feature network's fingerprint (its weights' hash): not a score"),
    ),
    description="Step distillation: the quality of a sampler's samples at N steps. The baseline is the "
                "teacher itself sampled with N DDIM steps; progressive distillation is the reference.",
)


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [DENOISING]


@hookimpl
def kdbench_leaderboard_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[Column, list[str]]] | None:
    return fd_columns(runs, rows)


@hookimpl
def kdbench_leaderboard_plots(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[str, str, Any]] | None:
    from kdbench_diffusion.steps_plot import fd_against_steps  # matplotlib only when publishing

    return fd_against_steps(runs, rows)
