"""Peng, Jin, Liu, Zhou, Wu, Liu, Li & Zhang, "Correlation Congruence for Knowledge Distillation"
(ICCV 2019, arXiv:1904.01802)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair


def correlation(embeddings: torch.Tensor, gamma: float, order: int) -> torch.Tensor:
    """The batch's Gaussian-RBF correlation matrix, by its Taylor expansion of order ``order``.

    For unit vectors ‖x − y‖² = 2 − 2xᵀy, so exp(−γ‖x − y‖²) = e^{−2γ} Σ_p (2γ)^p/p! · (xᵀy)^p;
    cutting the sum at ``order`` keeps the cost of a plain Gram matrix.
    """
    unit = F.normalize(embeddings, dim=1)
    cosine = unit @ unit.T
    return sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * cosine.pow(p)
               for p in range(order + 1))


class CC(Method):
    """Cross-entropy plus the MSE between teacher and student sample-correlation matrices.

    The student embedding goes through a learned linear projection to the teacher's width
    first (created in ``setup``); the teacher embedding is used as is — a learned teacher
    projection could collapse both sides to a constant and zero the loss. Kernel settings
    γ = 0.4, order 2 and weight 100 follow Knowledge-Distillation-Zoo's reimplementation;
    the paper's full objective also adds Hinton KD, which the ``kd`` row measures alone.
    """

    name = "cc"
    kinds = ("classification",)
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "embedding", "teacher_feature": "embedding",
                "gamma": 0.4, "order": 2, "weight": 100.0}
    search_space = {"weight": Range(10.0, 1000.0, log=True)}
    """A decade either side of Knowledge-Distillation-Zoo's weight 100; the kernel settings are kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["gamma"] <= 0:
            raise ValueError(f"gamma must be positive, got {params['gamma']}")
        if params["order"] < 1:
            raise ValueError(f"order must be at least 1, got {params['order']}")
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        s, t = feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)
        self.projection = nn.Linear(s.flatten(1).shape[1], t.flatten(1).shape[1])

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        congruence = F.mse_loss(correlation(self.projection(s.flatten(1)), self.gamma, self.order),
                                correlation(t.flatten(1), self.gamma, self.order))
        return {"task": self.task.loss(student.output, batch), "cc": self.weight * congruence}
