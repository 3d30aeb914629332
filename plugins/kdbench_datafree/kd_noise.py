"""The noise baseline of Chen et al. 2019, "Data-Free Learning of Student Networks" (ICCV 2019,
arXiv:1904.01186), Table 1: knowledge distillation on inputs drawn from a normal distribution."""

from __future__ import annotations

from typing import Any

from torch import nn

from kdbench import Range, TrainContext, soft_target_loss
from kdbench_datafree.synthetic import DataFreeMethod, check_params, gaussian


class NoiseKD(DataFreeMethod):
    """Soft targets on standard Gaussian noise shaped like the task's inputs: what the teacher's answers
    teach when nothing makes the inputs look like data — the lower bound of data-free distillation
    (DAFL's 88.01 % on MNIST).

    T = 1: DAFL compares against plain KD, and its own distillation term (``kdloss`` in
    DAFL-train.py) takes no temperature. The budget is the recipe's epochs, as dafl's is, so with the
    same recipe the two rows differ only in where the inputs come from.
    """

    name = "kd-noise"
    defaults = {"T": 1.0}
    search_space = {"T": Range(1.0, 20.0, log=True)}
    """Hinton et al. distil at T from 1 to 20."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_params(params, positive=("T",))

    def fit(self, context: TrainContext) -> nn.Module:
        shape, size = self.input_shape(), context.recipe.batch_size
        return self.distil(context, lambda generator: gaussian(context, generator, size, *shape),
                           lambda student, teacher: {"kd": soft_target_loss(student, teacher, self.T)})
