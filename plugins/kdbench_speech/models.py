"""Keyword-spotting CNNs on log-mel inputs [B, 1, mel, frames]: a residual teacher, DS-CNN students.

All three share the DS-CNN layout (Zhang et al. 2017, "Hello Edge"): a 5×9 (mel × frame)
stem of stride 4, then stride 2 into stage 2 — so their ``stage1..3`` are time-frequency
maps [B, C, F, T] of equal F and T (10×26, 5×13, 5×13 on 40×101 inputs) that attention and
hint methods compare without resizing. ``embedding`` is the pooled last stage [B, C]. The
stride-4 stem is what keeps training affordable on one CPU core: a stride-2 one made the
students three times slower for 40 ms of time resolution a spoken digit does not need.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task


def conv_bn(a: int, b: int, kernel: tuple[int, int] | int, stride: int = 1,
            groups: int = 1) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2) if isinstance(kernel, tuple) else kernel // 2
    conv = nn.Conv2d(a, b, kernel, stride, padding, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(b))


class Residual(nn.Module):
    """Two 3×3 convolutions and a shortcut (a strided 1×1 projection when the shape changes)."""

    def __init__(self, a: int, b: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(a, b, 3, stride), nn.ReLU(), conv_bn(b, b, 3))
        self.shortcut = nn.Identity() if a == b and stride == 1 else conv_bn(a, b, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def depthwise_separable(channels: int, stride: int) -> nn.Sequential:
    """MobileNet's block, as in DS-CNN: depthwise 3×3, then pointwise 1×1, each with BN, ReLU."""
    return nn.Sequential(conv_bn(channels, channels, 3, stride, groups=channels), nn.ReLU(),
                         conv_bn(channels, channels, 1), nn.ReLU())


class KWSNet(nn.Module):
    """A stem, three named stages, global average pooling and a linear classifier."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], width: int, classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.stem(x)
        features = {}
        for i, stage in enumerate(self.stages, start=1):
            h = stage(h)
            features[f"stage{i}"] = h
        features["embedding"] = h.mean(dim=(2, 3))
        return ModelOutput(self.head(features["embedding"]), features)


def stem(task: Task, width: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(task.info["input_shape"][0], width, (5, 9), stride=4), nn.ReLU())


def res_cnn(task: Task) -> nn.Module:
    """Residual CNN teacher (ResNet-8-like: one residual block per stage, 48-96-128 channels)."""
    stages = [Residual(48, 48, 1), Residual(48, 96, 2), Residual(96, 128, 1)]
    return KWSNet(stem(task, 48), stages, 128, task.info["num_classes"])


def ds_cnn(width: int):  # noqa: ANN201
    """DS-CNN with ``width`` channels throughout: the stem and four depthwise-separable blocks."""

    def build(task: Task) -> nn.Module:
        stages = [depthwise_separable(width, 1), depthwise_separable(width, 2),
                  nn.Sequential(depthwise_separable(width, 1), depthwise_separable(width, 1))]
        return KWSNet(stem(task, width), stages, width, task.info["num_classes"])

    return build


KINDS = ("classification",)
RES_CNN = ModelSpec("res-cnn", res_cnn, KINDS, ("speech",),
                    description="residual CNN on log-mel (48-96-128 channels), about 0.44M "
                                "parameters")
DS_CNN_S = ModelSpec("ds-cnn-s", ds_cnn(64), KINDS, ("speech",),
                     description="DS-CNN-S-like: 64 channels, four depthwise-separable blocks, "
                                 "about 24K parameters")
DS_CNN_XS = ModelSpec("ds-cnn-xs", ds_cnn(40), KINDS, ("speech",),
                      description="DS-CNN with 40 channels, about 11K parameters")
