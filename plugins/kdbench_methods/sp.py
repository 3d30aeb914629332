"""Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV 2019, arXiv:1907.09682)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair


def similarity(features: torch.Tensor) -> torch.Tensor:
    """The batch's activation similarity matrix G = A·Aᵀ with each row L2-normalised."""
    flat = features.flatten(1)
    return F.normalize(flat @ flat.T, dim=1)


class SP(Method):
    """Cross-entropy plus γ/b² · ‖G_t − G_s‖²_F over the batch's activation similarities G.

    Inputs that activate the teacher alike should activate the student alike; only the
    b × b similarities are compared, so the two models' widths may differ. γ = 3000 as in
    the paper's CIFAR experiments; by default on the last spatial stage (the paper's choice:
    the end of the last convolutional group).
    """

    name = "sp"
    kinds = ("classification",)
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "stage3", "teacher_feature": "stage3", "gamma": 3000.0}
    search_space = {"gamma": Range(300.0, 30000.0, log=True)}
    """A decade either side of the paper's CIFAR gamma = 3000."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["gamma"] < 0:
            raise ValueError(f"gamma must not be negative, got {params['gamma']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        size = len(s)
        preserved = (similarity(t) - similarity(s)).pow(2).sum() / size**2
        return {"task": self.task.loss(student.output, batch), "sp": self.gamma * preserved}
