"""CIFAR training augmentation: random 32×32 crops of the zero-padded image and horizontal flips.

The standard CIFAR recipe (RepDistiller's ``dataset/cifar100.py``, after He et al. 2016) is
torchvision's ``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip()`` on the PIL image,
before ``ToTensor`` and ``Normalize``. The padding there is black, pixel value 0, on the
un-normalised image; the images here are already normalised, so the border is filled per channel
with what 0 becomes after normalising, (0 − mean_c) / std_c, and the result is the same image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def crop_flip_draws(count: int, generator: torch.Generator, padding: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The random draws of ``crop_flip`` for ``count`` images, in the order it makes them:
    the crop's top-left corner in the padded image, (dy, dx) each in [0, 2·padding], and whether
    each image is flipped (p = 0.5)."""
    offsets = torch.randint(0, 2 * padding + 1, (count, 2), generator=generator, device=generator.device)
    flips = torch.rand(count, generator=generator, device=generator.device) < 0.5
    return offsets.cpu(), flips.cpu()


def normalised_black(mean: Sequence[float], std: Sequence[float]) -> tuple[float, ...]:
    """Each channel's value of a black pixel (0) once normalised: (0 − mean_c) / std_c."""
    return tuple(-m / s for m, s in zip(mean, std, strict=True))


def crop_flip(images: torch.Tensor, generator: torch.Generator, *, fill: Sequence[float] | torch.Tensor,
              padding: int = 4) -> torch.Tensor:
    """Random crops of the padded images, each flipped left–right with probability 0.5.

    ``fill`` is each channel's border value (``normalised_black`` for torchvision's zero padding).
    One gather over the batch does both the crop and the flip: no loop over images.
    """
    count, channels, height, width = images.shape
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(1, channels, 1, 1)
    padded = fill.expand(count, channels, height + 2 * padding, width + 2 * padding).clone()
    padded[:, :, padding : padding + height, padding : padding + width] = images
    offsets, flips = crop_flip_draws(count, generator, padding)
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)  # (count, height)
    cols = offsets[:, 1:] + torch.arange(width, device=images.device)  # (count, width)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(count, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]

