"""Hinton et al. 2015's MNIST MLPs and a small CNN pair; each returns named features.

MLPs name their hidden layers ``stage1..N`` and the last one also ``embedding``;
CNNs name their three convolutional stages ``stage1..3`` (spatial maps, for
attention- and hint-based methods) and the pooled vector ``embedding``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], classes: int, input_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(input_dropout)
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout))
            for a, b in zip(widths, widths[1:], strict=False)
        )
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.input_dropout(x.flatten(1))
        features = {}
        for i, layer in enumerate(self.hidden, start=1):
            h = layer(h)
            features[f"stage{i}"] = h
        features["embedding"] = h
        return ModelOutput(self.head(h), features)


class CNN(nn.Module):
    def __init__(self, in_channels: int, widths: tuple[int, int, int], classes: int) -> None:
        super().__init__()

        def block(a: int, b: int, pool: bool) -> nn.Sequential:
            layers = [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
            return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)

        self.stage1 = block(in_channels, widths[0], pool=False)
        self.stage2 = block(widths[0], widths[1], pool=True)
        self.stage3 = block(widths[1], widths[2], pool=True)
        self.head = nn.Linear(widths[2], classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        embedding = s3.mean(dim=(2, 3))
        return ModelOutput(self.head(embedding), {"stage1": s1, "stage2": s2, "stage3": s3, "embedding": embedding})


def _mlp(hidden: list[int], input_dropout: float = 0.0, dropout: float = 0.0):  # noqa: ANN202
    def build(task: Task) -> nn.Module:
        return MLP(math.prod(task.info["input_shape"]), hidden, task.info["num_classes"], input_dropout, dropout)

    return build


def _cnn(widths: tuple[int, int, int]):  # noqa: ANN202
    def build(task: Task) -> nn.Module:
        return CNN(task.info["input_shape"][0], widths, task.info["num_classes"])

    return build


KINDS = ("classification",)
HINTON_TEACHER = ModelSpec("hinton-mlp-1200", _mlp([1200, 1200], 0.2, 0.5), KINDS, ("vision",),
                           description="Hinton 2015 teacher: 2×1200 ReLU, dropout 0.2 on inputs, 0.5 on hidden units")
HINTON_STUDENT = ModelSpec("hinton-mlp-800", _mlp([800, 800]), KINDS, ("vision",),
                           description="Hinton 2015 student: 2×800 ReLU, no regularisation")
MLP_100 = ModelSpec("mlp-100", _mlp([100, 100]), KINDS, ("vision",), description="2×100 ReLU MLP")
MLP_30 = ModelSpec("mlp-30", _mlp([30, 30]), KINDS, ("vision",), description="2×30 ReLU MLP")
CNN_LARGE = ModelSpec("cnn-large", _cnn((32, 64, 128)), KINDS, ("vision",),
                      description="3-stage CNN (32-64-128 channels, BatchNorm), about 93K parameters")
CNN_MEDIUM = ModelSpec("cnn-medium", _cnn((16, 32, 64)), KINDS, ("vision",),
                       description="3-stage CNN (16-32-64 channels, BatchNorm), about 24K "
                                   "parameters: a teacher assistant for cnn-large → cnn-small")
CNN_SMALL = ModelSpec("cnn-small", _cnn((8, 16, 32)), KINDS, ("vision",),
                      description="3-stage CNN (8-16-32 channels, BatchNorm), about 6K parameters")
