"""Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints for Thin Deep Nets" (ICLR 2015,
arXiv:1412.6550)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair, hint_regressor


class FitNets(Method):
    """Cross-entropy plus the MSE between a teacher "hint" feature and a regressed student feature.

    Follows mdistiller's ``mdistiller/distillers/FitNet.py`` with its ``ConvReg``
    (``mdistiller/distillers/_common.py``; RepDistiller's ``models/util.py`` has the same): the
    regressor, created in ``setup`` from the two features' shapes and trained with the student,
    is a convolution with bias, BatchNorm and a ReLU, its kernel chosen so that the student map
    comes out at the hint's size (see ``feature_adapters.hint_regressor``); for vectors, a linear
    layer with bias, BatchNorm and a ReLU. The loss is weight · mean((r(F_s) − F_t)²). The paper
    trains in two stages (hint first, then KD); like mdistiller and RepDistiller this is the
    common one-stage version with their hint weight of 100 (``CFG.FITNET.LOSS.FEAT_WEIGHT`` in
    ``mdistiller/engine/cfg.py``).
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
        self.regressor = hint_regressor(guided, hint)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        guided, hint = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        hint_loss = self.weight * F.mse_loss(self.regressor(guided), hint)
        return {"task": self.task.loss(student.output, batch), "hint": hint_loss}
