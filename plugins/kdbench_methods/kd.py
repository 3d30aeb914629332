"""Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network" (arXiv:1503.02531)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) averaged over the batch, times T².

    The T² factor keeps the soft term's gradients the same size as the hard term's when
    T changes (the gradient of the KL scales as 1/T²), as the paper prescribes.
    """
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


class KD(Method):
    """Soft targets at temperature T, weighted α against the hard-label loss."""

    name = "kd"
    kinds = ("classification",)
    scheme = "offline"
    needs = "logits"
    defaults = {"T": 4.0, "alpha": 0.9}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["T"] <= 0:
            raise ValueError(f"T must be positive, got {params['T']}")
        if not 0 <= params["alpha"] <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {params['alpha']}")

    def loss(self, batch: Batch, student: ModelOutput, teacher: ModelOutput | None) -> dict[str, torch.Tensor]:
        assert teacher is not None
        soft = soft_target_loss(student.output, teacher.output, self.T)
        hard = self.task.loss(student.output, batch)
        return {"kd": self.alpha * soft, "task": (1 - self.alpha) * hard}
