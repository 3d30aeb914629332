"""Relation distillation between foreground BEV features, after Zhou et al., "UniDistill: A Universal
Cross-Modality Knowledge Distillation Framework for 3D Object Detection in Bird's-Eye View"
(CVPR 2023, arXiv:2303.15083)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_crossmodal.bev_grid import CELL, X_RANGE, Y_RANGE
from kdbench_crossmodal.methods.bev_feature import bev_maps

CORNERS = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5],
                        [0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]])
"""UniDistill's nine keypoints of a box in BEV, in units of its length and width: the centre,
the four corners and the four edge midpoints."""


def keypoint_features(bev: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BEV features [B, M, 9, C] sampled bilinearly at each box's keypoints, and the valid-box mask [B, M].

    ``boxes`` are [B, M, 6] (class, x, y, length, width, yaw; class -1 pads).
    """
    cos, sin = boxes[..., 5:6].cos(), boxes[..., 5:6].sin()
    along, across = CORNERS[:, 0] * boxes[..., 3:4], CORNERS[:, 1] * boxes[..., 4:5]
    x = boxes[..., 1:2] + along * cos - across * sin
    y = boxes[..., 2:3] + along * sin + across * cos
    rows = (x - X_RANGE[0]) / CELL - 0.5  # cell-centre coordinates
    cols = (y - Y_RANGE[0]) / CELL - 0.5
    size = bev.shape[-1]
    grid = torch.stack([cols / (size - 1) * 2 - 1, rows / (size - 1) * 2 - 1], dim=-1)  # [B, M, 9, 2]
    sampled = F.grid_sample(bev, grid, align_corners=True)  # [B, C, M, 9]
    return sampled.permute(0, 2, 3, 1), boxes[..., 0] >= 0


def relations(points: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [..., 9, 9] between the keypoint features of each box."""
    unit = F.normalize(points, dim=-1)
    return unit @ unit.transpose(-1, -2)


class BEVRelation(Method):
    """Task loss plus the smooth-L1 distance between student and teacher keypoint relations per object.

    UniDistill samples nine keypoints of every ground-truth box from the BEV features of both
    models and distils their features, their relations and the responses; this is its relation
    term alone: the 9×9 cosine-similarity matrix of each box's keypoint features. Cosine
    similarities are free of the channel count, so no adapter is needed.
    """

    name = "bev-relation"
    kinds = ("dense",)
    scheme = "offline"
    needs = "features"
    defaults = {"weight": 10.0}
    search_space = {"weight": Range(1.0, 100.0, log=True)}
    """A decade either side of weight 10."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        bev_maps(student_out, teacher_out)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = bev_maps(student, teacher)
        s_points, valid = keypoint_features(s, batch["boxes"])
        t_points, _ = keypoint_features(t, batch["boxes"])
        if not valid.any():
            relation = s.sum() * 0
        else:
            relation = F.smooth_l1_loss(relations(s_points[valid]), relations(t_points[valid]))
        return {"task": self.task.loss(student.output, batch), "relation": self.weight * relation}
