"""Park, Kim, Lu & Cho, "Relational Knowledge Distillation" (CVPR 2019, arXiv:1904.05068)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair


def normalised_distances(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pairwise Euclidean distances divided by their mean over distinct pairs (scale-free)."""
    squared = embeddings.pow(2).sum(1)
    squared_distances = squared[:, None] + squared[None, :] - 2 * embeddings @ embeddings.T
    distances = squared_distances.clamp(min=eps).sqrt()
    distances = distances * (1 - torch.eye(len(embeddings)))
    return distances / distances[distances > 0].mean()


def triplet_angles(embeddings: torch.Tensor) -> torch.Tensor:
    """cos ∠(e_i, e_j, e_k) for every triplet: the angle at e_j between directions to e_i, e_k."""
    directions = F.normalize(embeddings[None, :, :] - embeddings[:, None, :], p=2, dim=2)
    return torch.bmm(directions, directions.transpose(1, 2)).flatten()


class RKD(Method):
    """Cross-entropy plus distance- and angle-wise relations of the batch's embeddings (Huber loss).

    Distances are normalised by their mean, so only the shape of the teacher's embedding
    matters, not its scale; angles are scale-free anyway. The paper's weights: 25 for
    distance, 50 for angle.
    """

    name = "rkd"
    kinds = ("classification",)
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "embedding", "teacher_feature": "embedding",
                "distance_weight": 25.0, "angle_weight": 50.0}
    search_space = {"distance_weight": Range(2.5, 250.0, log=True), "angle_weight": Range(5.0, 500.0, log=True)}
    """A decade either side of the paper's weights, 25 (distance) and 50 (angle)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        for key in ("distance_weight", "angle_weight"):
            if params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {params[key]}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        pair = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        s, t = (f.flatten(1) for f in pair)
        distance = F.smooth_l1_loss(normalised_distances(s), normalised_distances(t))
        angle = F.smooth_l1_loss(triplet_angles(s), triplet_angles(t))
        return {
            "task": self.task.loss(student.output, batch),
            "distance": self.distance_weight * distance,
            "angle": self.angle_weight * angle,
        }
