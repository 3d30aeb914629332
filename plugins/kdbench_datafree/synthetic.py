"""What the four data-free methods share: the student's distillation on inputs a method makes, and
the generator two of them train.

Each method differs only in where its inputs come from (noise, a generator, a pool optimised against
the teacher) and in the loss the student takes on them. The student's steps still go through the
core's engine (``run_training``): recipe, seed, epochs, schedule, validation curves and the checkpoint
rule are those of every other run, with a stream of synthetic batches in place of the training split.
An epoch is as many synthetic inputs as the training split holds images (a count, known without
reading one), so the recipe's epochs size a data-free run as they size every other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, BatchStream, Method, TrainContext, call_model, run_training

Draw = Callable[[torch.Generator], torch.Tensor]
"""A batch of inputs (on the run's device), drawn with the stream's generator."""
StudentLoss = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
"""The student's named loss terms from its logits and the teacher's on the same inputs."""


def gaussian(context: TrainContext, generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard normal draws from ``generator`` (the stream's, seeded by the run), on the run's device."""
    return torch.randn(*shape, generator=generator).to(context.device)


def check_params(params: dict[str, Any], counts: tuple[str, ...] = (), positive: tuple[str, ...] = (),
                 weights: tuple[str, ...] = ()) -> None:
    """Refuse a budget or size that is not a whole number of at least 1, a rate or temperature that is
    not positive, and a negative loss weight (zero turns a term off)."""
    for key in counts:
        if isinstance(params[key], bool) or not isinstance(params[key], int) or params[key] < 1:
            raise ValueError(f"{key} must be an integer of at least 1, got {params[key]!r}")
    for key in positive:
        if not params[key] > 0:
            raise ValueError(f"{key} must be positive, got {params[key]!r}")
    for key in weights:
        if not params[key] >= 0:
            raise ValueError(f"{key} must be zero or positive, got {params[key]!r}")


class SyntheticStream(BatchStream):
    """Batches made on demand by ``draw`` instead of read from the training split: per epoch, as many
    batches of the recipe's size as the split (or the recipe's ``train_examples`` of it) would give."""

    def __init__(self, context: TrainContext, draw: Draw) -> None:
        super().__init__(context.task, context.recipe, context.seed)
        self.draw = draw
        images = context.recipe.train_examples or context.task.num_train
        self.batches = math.ceil(images / context.recipe.batch_size)

    def epoch(self) -> Iterator[Batch]:
        return ({"x": self.draw(self.generator)} for _ in range(self.batches))


class DataFreeMethod(Method):
    """A method whose student never sees a training input: it owns its scheme, and reads the teacher
    network to run it on the inputs it makes."""

    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    needs: ClassVar[str] = "model"
    data_free: ClassVar[bool] = True

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher network, held out of the method's modules: as a submodule the engine's
        ``method.train()`` would switch its BatchNorm to batch statistics."""
        return self.teachers[0].model

    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.task.info["input_shape"])

    def distil(self, context: TrainContext, draw: Draw, loss: StudentLoss) -> nn.Module:
        """Train the student the recipe's epochs through the engine on batches from ``draw``, by ``loss``
        against the teacher's logits on the same inputs."""

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                target = call_model(self.teacher, batch["x"]).output.float()
            return loss(call_model(context.model, batch["x"]).output.float(), target)

        return run_training(context, step, stream=SyntheticStream(context, draw))


class Generator(nn.Module):
    """DAFL's and DFAD's image generator (DAFL-train.py ``Generator``; DFAD's network/gan.py
    ``GeneratorA``, the same network with ``ngf`` = 64): a linear map of the latent code to a
    quarter-size map of 2·ngf channels, upsampled twice through 3×3 convolutions to the image, a tanh,
    and a last BatchNorm without affine parameters so the images come out standardised, as the
    teacher's inputs are. ``eps`` is the inner BatchNorms' epsilon: DAFL passes 0.8 (its
    ``BatchNorm2d(128, 0.8)`` sets eps, not momentum), DFAD keeps PyTorch's 1e-5.
    """

    def __init__(self, latent: int, shape: tuple[int, ...], ngf: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        channels, height, width = shape
        self.sizes = [(max(1, height // 4), max(1, width // 4)), (max(1, height // 2), max(1, width // 2)),
                      (height, width)]
        self.project = nn.Linear(latent, 2 * ngf * self.sizes[0][0] * self.sizes[0][1])
        self.start = nn.BatchNorm2d(2 * ngf)
        self.up1 = nn.Sequential(nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1), nn.BatchNorm2d(2 * ngf, eps),
                                 nn.LeakyReLU(0.2))
        self.up2 = nn.Sequential(nn.Conv2d(2 * ngf, ngf, 3, padding=1), nn.BatchNorm2d(ngf, eps), nn.LeakyReLU(0.2),
                                 nn.Conv2d(ngf, channels, 3, padding=1), nn.Tanh(),
                                 nn.BatchNorm2d(channels, affine=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.start(self.project(z).view(len(z), -1, *self.sizes[0]))
        x = self.up1(F.interpolate(x, size=self.sizes[1]))
        return self.up2(F.interpolate(x, size=self.sizes[2]))
