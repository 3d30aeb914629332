"""Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"
(arXiv:1503.02531)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from kdbench import Batch, Method, ModelOutput, Range, check_soft_target_params, soft_target_loss


class KD(Method):
    """Soft targets at temperature T, weighted α against the hard-label loss.

    On a language model's batches the same loss is taken token by token (as DistilGPT2 does):
    each real position's next-token distribution is one row, padding left out by the batch's
    ``mask``.
    """

    name = "kd"
    kinds = ("classification", "language-modeling")
    scheme = "offline"
    needs = "logits"
    defaults = {"T": 4.0, "alpha": 0.9}
    search_space = {"T": Range(1.0, 20.0, log=True), "alpha": Range(0.0, 1.0)}
    """T: Hinton et al. distil at T from 1 to 20 (mdistiller/RepDistiller use 4); alpha: the whole soft/hard blend."""
    reverse: ClassVar[bool] = False
    """Distil with KL(student ‖ teacher) instead of KL(teacher ‖ student) (see ``kd-reverse``)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_soft_target_params(params)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        soft = soft_target_loss(student.output, teacher.output, self.T, reverse=self.reverse, mask=batch.get("mask"))
        hard = self.task.loss(student.output, batch)
        return {"kd": self.alpha * soft, "task": (1 - self.alpha) * hard}
