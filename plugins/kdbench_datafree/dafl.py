"""Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu & Tian, "Data-Free Learning of Student Networks" (ICCV 2019,
arXiv:1904.01186); reference code: huawei-noah/Data-Efficient-Model-Compression, DAFL/DAFL-train.py."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Range, TrainContext, call_model, soft_target_loss
from kdbench_datafree.synthetic import DataFreeMethod, Generator, check_params, gaussian


def dafl_losses(logits: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
    """The teacher's three verdicts on a batch of generated images, each lower when the images look
    more like its training data.

    ``one_hot``: cross-entropy against its own argmax — real images get confident answers.
    ``activation``: minus the mean absolute feature — real images excite the features the teacher
    learnt. ``entropy``: the negative entropy of the batch-mean softmax — real data covers every
    class, so a generator that collapses onto one pays for it. The entropy is in base 10, as
    DAFL-train.py takes it (``torch.log10``); its weight of 5 was set for that base.
    """
    mean = logits.softmax(dim=1).mean(dim=0)
    return {
        "one_hot": F.cross_entropy(logits, logits.argmax(dim=1)),
        "activation": -features.abs().mean(),
        "entropy": torch.special.xlogy(mean, mean).sum() / math.log(10),  # 0·log 0 = 0 where a class gets nothing
    }


def identical_images(images: torch.Tensor) -> torch.Tensor:
    """Whether every image of the batch is the same one (a 0-d bool tensor, left on the device so that
    counting them costs no synchronisation a step): the generator's dead state. Its tanh saturated
    at one sign everywhere, the last BatchNorm turns the constant into zeros, and no gradient comes back
    through the tanh, so the generator stays there and the student learns one class from then on."""
    return (images.flatten(1) - images[:1].flatten(1)).abs().max() <= 1e-6


class DAFL(DataFreeMethod):
    """A generator taught by the teacher alone (its ``dafl_losses``, on the teacher's ``embedding``),
    the student distilled from the teacher on the generator's images as it goes.

    Each step makes one batch, takes the generator's step on it (Adam, its own optimiser), then the
    student's KD step on the same images, detached, at T = 1 (DAFL-train.py's ``kdloss``): the
    authors' order. The student's optimiser is the recipe's; DAFL-train.py's MNIST run uses Adam at
    2e-3 with batches of 512 (the suite sets them).

    Defaults from DAFL-train.py's MNIST arguments: ``oh`` 1, ``ie`` 5, ``a`` 0.1, ``lr_G`` 0.2,
    ``latent_dim`` 100, and its generator (inner BatchNorm eps 0.8). The budget is the recipe's
    epochs, each as many generated images as the training split holds: the authors' 200 "epochs" of
    120 steps of 512 images are some 205 such epochs of MNIST's 60,000, far past two CPU cores (one
    generator step on 28×28 images costs about 0.7 CPU-seconds at batch 64, six at 512); the suite
    gives 3 epochs of batches of 64.

    The run logs ``dafl_identical_batches``, the share of the generator's batches whose images were all
    the same (``identical_images``): 0 in a healthy run; a generator that died at step k of n shows
    about 1 − k/n.
    """

    name = "dafl"
    defaults = {"oh": 1.0, "ie": 5.0, "a": 0.1, "lr_G": 0.2, "latent_dim": 100}
    search_space = {"oh": Range(0.5, 1.0)}
    """The authors' one-hot weight: 1 on MNIST and CIFAR-10, 0.5 on CIFAR-100 (DAFL's README)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_params(params, counts=("latent_dim",), positive=("lr_G",), weights=("oh", "ie", "a"))

    def fit(self, context: TrainContext) -> nn.Module:
        size = context.recipe.batch_size
        self.generator = Generator(self.latent_dim, self.input_shape(), eps=0.8).to(context.device)
        optimiser = torch.optim.Adam(self.generator.parameters(), lr=self.lr_G)
        identical: list[torch.Tensor] = []

        def draw(generator: torch.Generator) -> torch.Tensor:
            images = self.generator(gaussian(context, generator, size, self.latent_dim))
            teacher = call_model(self.teacher, images)
            terms = dafl_losses(teacher.output, teacher.features["embedding"])
            loss = self.oh * terms["one_hot"] + self.a * terms["activation"] + self.ie * terms["entropy"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            identical.append(identical_images(images.detach()))
            return images.detach()

        student = self.distil(context, draw, lambda student, teacher: {"kd": soft_target_loss(student, teacher, 1.0)})
        context.log({"dafl_identical_batches": torch.stack(identical).float().mean().item()}, None)
        return student
