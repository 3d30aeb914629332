"""Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer"
(arXiv:1707.01219, 2017)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, IncompatibleCombination, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import common_size, feature_pair, shared_maps

SHARED = "shared"
"""The feature default: every spatial map both models name alike, as the reference code uses every stage."""


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
    """Cross-entropy plus λ · Σ_stages MMD² between student and teacher neuron-selectivity patterns.

    Follows mdistiller's ``mdistiller/distillers/NST.py`` (``nst_loss`` sums
    ``single_stage_nst_loss`` over the stages; λ = ``CFG.NST.LOSS.FEAT_WEIGHT`` = 50 in
    ``mdistiller/engine/cfg.py``) and RepDistiller's ``distiller_zoo/NST.py`` (``NSTLoss``, one
    term per stage, summed by the training script with λ = 50): the paper's polynomial kernel
    (d = 2, c = 0) on every spatial map both models name alike (found in ``setup``). Where a
    stage's sizes differ, the larger map is average-pooled to the smaller's size, as both do.
    Naming ``student_feature`` and ``teacher_feature`` (both) uses that one pair of maps instead.
    """

    name = "nst"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": SHARED, "teacher_feature": SHARED, "weight": 50.0}
    search_space = {"weight": Range(5.0, 500.0, log=True)}
    """A decade either side of the paper's lambda = 50 (mdistiller/RepDistiller's too)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")
        if (params["student_feature"] == SHARED) != (params["teacher_feature"] == SHARED):
            raise ValueError("student_feature and teacher_feature must both be named, or both be "
                             f"'{SHARED}' (every spatial map both models name alike)")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        if self.student_feature == SHARED:
            self.pairs = [(name, name) for name in shared_maps(student_out, teacher_out)]
            return
        s, _ = feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)
        if s.dim() != 4:
            raise IncompatibleCombination(
                f"nst needs spatial maps; feature '{self.student_feature}' is a vector")
        self.pairs = [(self.student_feature, self.teacher_feature)]

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        mmd = torch.zeros(())
        for student_name, teacher_name in self.pairs:
            s, t = feature_pair(student, teacher, student_name, teacher_name)
            mmd = mmd + selectivity_mmd(*common_size(s, t))
        return {"task": self.task.loss(student.output, batch), "nst": self.weight * mmd}
