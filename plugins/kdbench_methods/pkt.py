"""Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer"
(ECCV 2018, arXiv:1803.10837)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair

EPS = 1e-7


def conditional_affinities(features: torch.Tensor) -> torch.Tensor:
    """P(j | i) over the batch from the cosine kernel (cos + 1)/2, each row summing to one."""
    unit = F.normalize(features.flatten(1), dim=1, eps=EPS)
    kernel = (unit @ unit.T + 1) / 2
    return kernel / kernel.sum(1, keepdim=True)


class PKT(Method):
    """Cross-entropy plus the KL between teacher and student conditional sample affinities.

    Matching the probability that sample j is a neighbour of sample i, rather than the
    features themselves, lets embeddings of different sizes be compared without a
    regressor. Cosine kernel as in the paper; the weight 30000 is RepDistiller's and
    mdistiller's for classification (the paper trains with the PKT loss alone).
    """

    name = "pkt"
    kinds = ("classification",)
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "embedding", "teacher_feature": "embedding", "weight": 30000.0}
    search_space = {"weight": Range(3000.0, 300000.0, log=True)}
    """A decade either side of RepDistiller/mdistiller's weight 30000."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        p_s, p_t = conditional_affinities(s), conditional_affinities(t)
        divergence = (p_t * torch.log((p_t + EPS) / (p_s + EPS))).mean()
        return {"task": self.task.loss(student.output, batch), "pkt": self.weight * divergence}
