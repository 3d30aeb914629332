"""Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints for Thin Deep Nets" (ICLR 2015,
arXiv:1412.6550)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair, regressor, resize


class FitNets(Method):
    """Cross-entropy plus the MSE between a teacher "hint" feature and a regressed student feature.

    The regressor (a 1×1 convolution for maps, a linear map for vectors, created in ``setup``
    from the two features' shapes) is trained with the student. The paper trains in two
    stages (hint first, then KD); like mdistiller and RepDistiller this is the common
    one-stage version with their hint weight of 100. A regressed map of another spatial
    size than the hint's is resized to it.
    """

    name = "fitnets"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "stage2", "teacher_feature": "stage2", "weight": 100.0}
    search_space = {"weight": Range(10.0, 1000.0, log=True)}
    """A decade either side of mdistiller/RepDistiller's hint weight 100."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        guided, hint = feature_pair(student_out, teacher_out, self.student_feature,
                                    self.teacher_feature)
        self.regressor = regressor(guided, hint.shape[1])

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        guided, hint = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        regressed = self.regressor(guided)
        if hint.dim() == 4:
            regressed = resize(regressed, hint.shape[-2:])
        hint_loss = self.weight * F.mse_loss(regressed, hint)
        return {"task": self.task.loss(student.output, batch), "hint": hint_loss}
