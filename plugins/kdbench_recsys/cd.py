"""Lee, Choi, Kang & Yu, "Collaborative Distillation for Top-N Recommendation"
(CD, ICDM 2019)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, ModelOutput, Range
from kdbench_recsys.distillation import RankingDistillation
from kdbench_recsys.view import BPR_PAIR, Rankings


def sampling_odds(teacher_rank: torch.Tensor, student_rank: torch.Tensor, temperature: float,
                  epsilon: float, guided: float) -> torch.Tensor:
    """Unnormalised odds of drawing each item: (1 − g) · rank-aware exp(−r_t / T) + g · the
    rank discrepancy tanh(max(ε (r_s − r_t), 0)), each normalised over the user's items.

    The rank-aware part favours what the teacher ranks high; the discrepancy part what
    the student still ranks below the teacher. ``g`` moves weight from the first (teacher-guided)
    to the second (student-guided) as training goes on.
    """
    ranked = torch.exp(-teacher_rank.float() / temperature)
    discrepancy = torch.tanh((epsilon * (student_rank - teacher_rank).float()).clamp(min=0))
    ranked = ranked / ranked.sum(1, keepdim=True)
    discrepancy = discrepancy / discrepancy.sum(1, keepdim=True).clamp(min=1e-12)
    return (1 - guided) * ranked + guided * discrepancy


class CD(RankingDistillation):
    """BPR + λ · binary cross-entropy of the student towards the teacher's soft labels σ(s_t)
    on items sampled from each user's unobserved ones.

    CD reads the teacher's scores as soft labels for the missing feedback, on a few sampled
    unobserved items per user, drawn each epoch with the odds of ``sampling_odds``: first
    rank-aware (teacher-guided), then increasingly by rank discrepancy (student-guided),
    the mixing weight rising linearly from 0 at the first epoch to 1 at the last. Items
    the user interacted with in training are never drawn. Defaults: 10 samples per user,
    T = 10, ε = 0.1, λ = 1. Differences from the paper: the linear schedule stands for
    its switch between the teacher- and student-guided strategies, and the soft label is
    σ of the teacher's BPR score, which is a ranking score rather than a calibrated probability.
    """

    name = "cd"
    uses_student_ranking = True
    defaults = {"samples": 10, "T": 10.0, "epsilon": 0.1, "weight": 1.0}
    search_space = {"weight": Range(0.1, 10.0, log=True), "T": Range(1.0, 100.0, log=True),
                    "epsilon": Range(0.01, 1.0, log=True)}
    """A decade either side of the defaults lambda = 1, T = 10, epsilon = 0.1; samples is a count."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["samples"] < 1:
            raise ValueError(f"samples must be at least 1, got {params['samples']}")
        if params["T"] <= 0 or params["epsilon"] <= 0 or params["weight"] < 0:
            raise ValueError("T and epsilon must be positive and weight not negative")

    def draw(self, ranking: Rankings, generator: torch.Generator) -> dict[str, torch.Tensor]:
        guided = (self.epoch - 1) / max(self.epochs - 1, 1)
        odds = sampling_odds(ranking.teacher_rank, ranking.student_rank, self.T, self.epsilon, guided)
        # a floor keeps every unseen item drawable when fewer than ``samples`` have odds left
        odds = (odds + 1e-12).masked_fill(self.task.seen_in_train, 0.0)
        return {"items": torch.multinomial(odds, self.samples, replacement=False, generator=generator)}

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        soft = torch.sigmoid(teacher.output[:, BPR_PAIR:])
        return {"task": self.task.loss(student.output, batch),
                "cd": self.weight * F.binary_cross_entropy_with_logits(student.output[:, BPR_PAIR:], soft)}
