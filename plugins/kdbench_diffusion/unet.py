"""The MNIST denoiser: a small diffusers ``UNet2DModel`` (1.66 M parameters) predicting v at (x_t, t).

Four resolution levels (32, 16, 8, 4 pixels) of 16, 32, 64 and 96 channels, one residual block
each, no attention, GroupNorm with 8 groups: the widths sit at low resolution, where parameters
are cheap to run, because every sample of the benchmark is drawn on one CPU thread (about 4 ms
per image and network evaluation). The mid block's activations are the named feature ``mid``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task

CHANNELS = (16, 32, 64, 96)


class UNetDenoiser(nn.Module):
    def __init__(self, channels: int = 1, size: int = 32) -> None:
        super().__init__()
        from diffusers import UNet2DModel  # imported on use: diffusers is slow to import

        self.unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                                block_out_channels=CHANNELS, layers_per_block=1, norm_num_groups=8,
                                down_block_types=("DownBlock2D",) * len(CHANNELS),
                                up_block_types=("UpBlock2D",) * len(CHANNELS))
        self._mid: torch.Tensor | None = None
        self.unet.mid_block.register_forward_hook(lambda module, args, output: setattr(self, "_mid", output))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
        v = self.unet(x_t, t).sample
        return ModelOutput(v, {"mid": self._mid})


def build_unet(task: Task) -> nn.Module:
    channels, height, width = task.info["input_shape"]
    return UNetDenoiser(channels, height)


UNET = ModelSpec("unet-mnist", build_unet, kinds=("denoising",), modalities=("vision",),
                 description="diffusers UNet2DModel, 16-32-64-96 channels, 1.66 M parameters, v-prediction")
