"""Fang, Song, Shen, Wang, Chen & Song, "Data-Free Adversarial Distillation" (2019, arXiv:1912.11006);
reference code: VainF/Data-Free-Adversarial-Distillation, DFAD_mnist.py and network/gan.py."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from kdbench import TrainContext, call_model
from kdbench_datafree.synthetic import DataFreeMethod, Generator, check_params, gaussian


def logit_l1(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the logits, over samples and classes (DFAD's ``F.l1_loss``):
    unlike a KL between softmaxes it does not vanish once both networks agree on the argmax, so the
    generator still finds disagreement to climb."""
    return (student - teacher).abs().mean()


class DFAD(DataFreeMethod):
    """A min-max game on the student–teacher discrepancy: the generator climbs ``logit_l1``, the
    student descends it on the generator's images.

    Each round is ``student_steps`` student steps on fresh images (the generator's, detached) and then
    one generator step through both networks, as DFAD_mnist.py's ``train`` loops; the last round's
    generator step, which no student step would see, is not taken. The student's optimiser is the
    recipe's: DFAD_mnist.py uses SGD at 0.01, momentum 0.9, weight decay 1e-4, batches of 512 (the
    suite sets them).

    Defaults from DFAD_mnist.py: ``lr_G`` 1e-3 (Adam), ``latent_dim`` (its ``nz``) 100, 5 student
    steps a round, network/gan.py's ``GeneratorA`` (ngf 64). The budget is the recipe's epochs of
    student steps, each epoch as many generated images as the training split holds: the authors' 40
    "epochs" of 50 rounds of 5 × 512 images are some 85 such epochs of MNIST's 60,000, far past two
    CPU cores (a round costs about six generator passes, 1.7 CPU-seconds at batch 64 on 28×28
    images); the suite gives 3 epochs of batches of 64.
    """

    name = "dfad"
    defaults = {"lr_G": 1e-3, "latent_dim": 100, "student_steps": 5}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_params(params, counts=("latent_dim", "student_steps"), positive=("lr_G",))

    def fit(self, context: TrainContext) -> nn.Module:
        size = context.recipe.batch_size
        self.generator = Generator(self.latent_dim, self.input_shape()).to(context.device)
        optimiser = torch.optim.Adam(self.generator.parameters(), lr=self.lr_G)
        drawn = itertools.count()

        def draw(generator: torch.Generator) -> torch.Tensor:
            if (step := next(drawn)) and step % self.student_steps == 0:
                images = self.generator(gaussian(context, generator, size, self.latent_dim))
                student, teacher = call_model(context.model, images).output, call_model(self.teacher, images).output
                optimiser.zero_grad(set_to_none=True)
                (-logit_l1(student, teacher)).backward()  # the engine clears the student's gradients this leaves
                optimiser.step()
            with torch.no_grad():
                return self.generator(gaussian(context, generator, size, self.latent_dim))

        return self.distil(context, draw, lambda student, teacher: {"l1": logit_l1(student, teacher)})
