"""Response distillation on the BEV class heatmaps: Hinton et al.'s soft targets applied per BEV cell,
as the response terms of Chong et al., "MonoDistill: Learning Spatial Features for Monocular 3D Object
Detection" (ICLR 2022, arXiv:2201.10830) and BEVDistill (ICLR 2023) distil a LiDAR detector's
predictions into a camera one."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput
from kdbench_crossmodal.kitti_format import CLASSES


class HeatmapKD(Method):
    """Task loss plus the binary cross-entropy of the student's heatmaps against the teacher's probabilities.

    Each class heatmap cell is a binary prediction, so the soft target is the teacher's sigmoid
    (softened by ``T`` on the logits, the loss scaled by T² as in Hinton et al.). It reads only the
    teacher's output, so it works with a black-box teacher and with cached teacher outputs.
    """

    name = "heatmap-kd"
    kinds = ("dense",)
    scheme = "offline"
    needs = "logits"
    defaults = {"weight": 1.0, "T": 1.0}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")
        if params["T"] <= 0:
            raise ValueError(f"T must be positive, got {params['T']}")

    def loss(self, batch: Batch, student: ModelOutput, teacher: ModelOutput | None) -> dict[str, torch.Tensor]:
        assert teacher is not None
        classes = len(CLASSES)
        soft = torch.sigmoid(teacher.output[:, :classes] / self.T)
        response = F.binary_cross_entropy_with_logits(student.output[:, :classes] / self.T, soft)
        return {"task": self.task.loss(student.output, batch), "heatmap": self.weight * self.T**2 * response}
