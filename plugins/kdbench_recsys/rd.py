"""Tang & Wang, "Ranking Distillation: Learning Compact Ranking Models With High Performance for
Recommender System" (RD, KDD 2018, arXiv:1809.07428)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, ModelOutput, Range
from kdbench_recsys.distillation import RankingDistillation
from kdbench_recsys.view import BPR_PAIR, Rankings


def position_weights(k: int, sharpness: float) -> torch.Tensor:
    """RD's position importance w_r ∝ exp(−r / λ) for teacher positions r = 1..K, summing to 1."""
    weights = torch.exp(-torch.arange(1, k + 1, dtype=torch.float) / sharpness)
    return weights / weights.sum()


def dynamic_weights(student_rank: torch.Tensor, teacher_rank: torch.Tensor, mu: float) -> torch.Tensor:
    """RD's ranking discrepancy w_d = tanh(max(μ · (r_student − r_teacher), 0)): an item of the
    teacher's top K weighs more the lower the student still ranks it, nothing once the student
    ranks it at least as high as the teacher does."""
    return torch.tanh((mu * (student_rank - teacher_rank).float()).clamp(min=0))


def rd_loss(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """−Σ_k w_k log σ(s_k): the teacher's top-K items as weighted positives, averaged over rows."""
    return -(weights * F.logsigmoid(scores)).sum(1).mean()


class RD(RankingDistillation):
    """(1 − α) BPR + α Σ_k w_k (−log σ(s_k)) over the teacher's top-K items of each user.

    The teacher's K highest-scored items among those the user has not interacted with in
    training are treated as extra positives, weighted by RD's hybrid scheme: position
    importance w_r ∝ exp(−r/λ) times the ranking discrepancy tanh(max(μ(r̂ − r), 0)), where
    r̂ is the student's rank of the item, normalised over the K items. Paper defaults K = 10,
    λ = 1, μ = 0.1, α = 0.5. Differences from the paper: the student's ranks are computed
    exactly over every item once per epoch, where RD estimates them by sampling every few
    iterations; and the hybrid weights apply from the first epoch (RD starts with w_r
    alone), which changes little as an untrained student ranks the teacher's top items low.
    """

    name = "rd"
    uses_student_ranking = True
    defaults = {"K": 10, "lamb": 1.0, "mu": 0.1, "alpha": 0.5}
    search_space = {"alpha": Range(0.0, 1.0), "mu": Range(0.01, 1.0, log=True), "lamb": Range(0.1, 10.0, log=True)}
    """Around the paper's alpha = 0.5 (the whole blend), mu = 0.1 and lambda = 1 (a decade either side); K is a
    count."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["K"] < 1:
            raise ValueError(f"K must be at least 1, got {params['K']}")
        if params["lamb"] <= 0 or params["mu"] <= 0:
            raise ValueError(f"lamb and mu must be positive, got {params['lamb']} and {params['mu']}")
        if not 0 <= params["alpha"] <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {params['alpha']}")

    def draw(self, ranking: Rankings, generator: torch.Generator) -> dict[str, torch.Tensor]:
        top = ranking.teacher_ranked[:, :self.K]
        dynamic = dynamic_weights(ranking.student_rank.gather(1, top), torch.arange(self.K), self.mu)
        weights = position_weights(self.K, self.lamb) * dynamic
        return {"items": top, "rd_weights": weights / weights.sum(1, keepdim=True).clamp(min=1e-12)}

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        return {"task": (1 - self.alpha) * self.task.loss(student.output, batch),
                "rd": self.alpha * rd_loss(student.output[:, BPR_PAIR:], batch["rd_weights"])}
