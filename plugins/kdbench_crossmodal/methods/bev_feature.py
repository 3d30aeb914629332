"""BEV feature imitation weighted to the foreground, after Chen et al., "BEVDistill: Cross-Modal BEV
Distillation for Multi-View 3D Object Detection" (ICLR 2023, arXiv:2211.09386) and Hong et al.,
"Cross-Modality Knowledge Distillation Network for Monocular 3D Object Detection" (CMKD, ECCV 2022,
arXiv:2211.07171)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kdbench import Batch, IncompatibleCombination, Method, ModelOutput, Range


def bev_maps(student: ModelOutput, teacher: ModelOutput | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``bev`` feature maps of student and teacher, which must share the BEV grid."""
    if teacher is None or "bev" not in student.features or "bev" not in teacher.features:
        raise IncompatibleCombination("this method needs a 'bev' feature map from student and teacher")
    s, t = student.features["bev"], teacher.features["bev"]
    if s.shape[-2:] != t.shape[-2:]:
        raise IncompatibleCombination(
            f"student BEV grid {tuple(s.shape[-2:])} is not the teacher's {tuple(t.shape[-2:])}")
    return s, t


class BEVFeature(Method):
    """Task loss plus the MSE between adapted student and teacher BEV features, weighted to objects.

    The adapter is a 1×1 convolution (student to teacher channels), as CMKD's and BEVDistill's.
    Each BEV cell's weight is the ground-truth heatmap there (the Gaussian around object centres,
    maximum over classes) plus ``background`` — BEVDistill's foreground-guided weighting — and the
    squared error is averaged over the weighted cells.
    """

    name = "bev-feature"
    kinds = ("dense",)
    scheme = "offline"
    needs = "features"
    defaults = {"weight": 1.0, "background": 0.05}
    search_space = {"weight": Range(0.1, 10.0, log=True)}
    """A decade either side of weight 1; the background floor is BEVDistill's weighting, kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        for key in ("weight", "background"):
            if params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {params[key]}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        s, t = bev_maps(student_out, teacher_out)
        self.adapter = nn.Conv2d(s.shape[1], t.shape[1], 1)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = bev_maps(student, teacher)
        weights = batch["heatmap"].amax(dim=1, keepdim=True) + self.background
        error = (self.adapter(s) - t).pow(2).mean(dim=1, keepdim=True)
        imitation = (weights * error).sum() / weights.sum()
        return {"task": self.task.loss(student.output, batch), "bev": self.weight * imitation}
