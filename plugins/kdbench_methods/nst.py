"""Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer"
(arXiv:1707.01219, 2017)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, IncompatibleCombination, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair, resize


def selectivity_mmd(student_maps: torch.Tensor, teacher_maps: torch.Tensor) -> torch.Tensor:
    """Squared MMD between the two models' channels, polynomial kernel k(x, y) = (xᵀy)².

    Each channel is one sample of the model's "neuron selectivity" distribution: its
    activation pattern over the spatial positions, L2-normalised. The channel counts may
    differ; the spatial sizes must match. Averaged over the batch.
    """
    s = F.normalize(student_maps.flatten(2), dim=2)
    t = F.normalize(teacher_maps.flatten(2), dim=2)

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.transpose(1, 2)).pow(2).mean()

    return kernel(s, s) + kernel(t, t) - 2 * kernel(s, t)


class NST(Method):
    """Cross-entropy plus λ·MMD² between student and teacher neuron-selectivity patterns.

    The paper's polynomial kernel (d = 2, c = 0) with λ = 50 (as mdistiller/RepDistiller use
    it), on one named spatial map per model, the last stage by default. A student map of
    another size is resized to the teacher's.
    """

    name = "nst"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "stage3", "teacher_feature": "stage3", "weight": 50.0}
    search_space = {"weight": Range(5.0, 500.0, log=True)}
    """A decade either side of the paper's lambda = 50 (mdistiller/RepDistiller's too)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        s, _ = feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)
        if s.dim() != 4:
            raise IncompatibleCombination(
                f"nst needs spatial maps; feature '{self.student_feature}' is a vector")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        mmd = selectivity_mmd(resize(s, t.shape[-2:]), t)
        return {"task": self.task.loss(student.output, batch), "nst": self.weight * mmd}
