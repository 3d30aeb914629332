"""Response distillation on the BEV class heatmaps: Hinton et al.'s soft targets applied per BEV cell,
as the response terms of Chong et al., "MonoDistill: Learning Spatial Features for Monocular 3D Object
Detection" (ICLR 2022, arXiv:2201.10830) and BEVDistill (ICLR 2023) distil a LiDAR detector's
predictions into a camera one."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_crossmodal.kitti_format import CLASSES


def bernoulli_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) of the per-cell Bernoulli distributions, cell by cell (zero where they agree)."""
    target = torch.sigmoid(teacher_logits)
    cross = F.binary_cross_entropy_with_logits(student_logits, target, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits, target, reduction="none")
    return cross - entropy


class HeatmapKD(Method):
    """Task loss plus the KL divergence from the teacher's heatmap probabilities to the student's.

    Each class heatmap cell is a binary prediction, so the soft target is the teacher's sigmoid,
    softened by ``T`` on both models' logits, the term scaled by T² (Hinton et al.). Summed over
    cells and divided by the number of objects, the task's focal-loss normalisation, so both
    terms have one scale. It reads only the teacher's output: it works with a black-box teacher
    and with teacher outputs cached once per teacher.
    """

    name = "heatmap-kd"
    kinds = ("dense",)
    scheme = "offline"
    needs = "logits"
    defaults = {"weight": 1.0, "T": 1.0}
    search_space = {"weight": Range(0.1, 10.0, log=True), "T": Range(1.0, 10.0, log=True)}
    """A decade either side of weight 1; T from 1 (the default) up, as Hinton et al. soften."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")
        if params["T"] <= 0:
            raise ValueError(f"T must be positive, got {params['T']}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        classes = len(CLASSES)
        divergence = bernoulli_kl(student.output[:, :classes] / self.T, teacher.output[:, :classes] / self.T)
        response = divergence.sum() / batch["mask"].sum().clamp(min=1)
        return {"task": self.task.loss(student.output, batch), "heatmap": self.weight * self.T**2 * response}
