"""Image augmentations a vision task recipe can name."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(images: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y, filling with the background value.

    Hinton et al. 2015 train their MNIST teacher on inputs jittered by up to two pixels.
    """
    background = images.amin()
    padded = F.pad(images, (pixels, pixels, pixels, pixels), value=float(background))
    height, width = images.shape[-2:]
    shifts = torch.randint(0, 2 * pixels + 1, (len(images), 2), generator=generator)
    out = torch.empty_like(images)
    codes = shifts[:, 0] * (2 * pixels + 1) + shifts[:, 1]
    for code in codes.unique().tolist():
        dy, dx = divmod(code, 2 * pixels + 1)
        chosen = (codes == code).nonzero().flatten()
        out[chosen] = padded[chosen, ..., dy : dy + height, dx : dx + width]
    return out


AUGMENTATIONS = {"jitter1": lambda x, g: jitter(x, g, 1), "jitter2": lambda x, g: jitter(x, g, 2)}
