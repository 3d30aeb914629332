"""Grids of generated images: what a reader compares by eye at each sampling-step count.

The task keeps the grids its evaluations drew and hands them to the runner as the run's
pictures (``Task.pictures``), which logs them as artifacts and puts them on the page.
"""

from __future__ import annotations

import io

import torch

GRID_SIDE = 8


def grid_png(samples: torch.Tensor) -> bytes | None:
    """The first 8×8 image samples (in [−1, 1]) as one PNG; 2-D toy points are not drawn."""
    if samples.dim() != 4:
        return None
    from torchvision.utils import save_image

    buffer = io.BytesIO()
    save_image(samples[: GRID_SIDE**2].clamp(-1, 1), buffer, format="png", nrow=GRID_SIDE, normalize=True,
               value_range=(-1, 1))
    return buffer.getvalue()
