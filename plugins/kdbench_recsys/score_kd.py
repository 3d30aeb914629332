"""Point-wise distillation of the teacher's scores: the plain KD baseline of ranking distillation."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, ModelOutput, Range
from kdbench_recsys.distillation import RankingDistillation
from kdbench_recsys.view import Rankings


class ScoreKD(RankingDistillation):
    """BPR plus weight × the squared error between student and teacher scores on the BPR pair.

    Regressing the teacher's scores (Ba & Caruana 2014's logit matching, applied to
    recommendation scores) is the naive baseline that Tang & Wang (2018) and Kang et al.
    (2020) improve on: it spends the student's few dimensions on every score's exact value,
    also where the order is already right. No extra items: the positive and the negative
    item of each BPR triple are the points distilled.
    """

    name = "score-kd"
    defaults = {"weight": 1.0}
    search_space = {"weight": Range(0.1, 10.0, log=True)}
    """A decade either side of weight 1 (score regression has no paper value for this loss's scale)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def draw(self, ranking: Rankings, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"items": torch.empty(len(ranking.teacher_scores), 0, dtype=torch.long)}

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        return {"task": self.task.loss(student.output, batch),
                "score_kd": self.weight * F.mse_loss(student.output, teacher.output)}
