"""Kang, Hwang, Kweon & Yu, "DE-RRD: A Knowledge Distillation Framework for Recommender System"
(CIKM 2020, arXiv:2012.04357): relaxed ranking distillation (RRD)."""

from __future__ import annotations

from typing import Any

import torch

from kdbench import Batch, ModelOutput, Range
from kdbench_recsys.distillation import RankingDistillation
from kdbench_recsys.view import BPR_PAIR, Rankings


def relaxed_ranking_loss(interesting: torch.Tensor, uninteresting: torch.Tensor) -> torch.Tensor:
    """−log of the Plackett-Luce probability that the interesting items come first, in the
    teacher's order, above every uninteresting item — whose own order is left free (the
    relaxation). Rows are users; ``interesting`` [B, K] in the teacher's order, best first.

    −Σ_k [s_k − log(Σ_{l ≥ k} exp s_l + Σ_j exp u_j)], computed in log space (a single shift
    by the row's maximum would underflow the later positions' sums when scores spread widely),
    averaged over rows.
    """
    tail = interesting.flip(1).logcumsumexp(1).flip(1)  # log Σ_{l ≥ k} exp s_l
    below = torch.logaddexp(tail, uninteresting.logsumexp(1, keepdim=True))
    return (below - interesting).sum(1).mean()


class RRD(RankingDistillation):
    """BPR + λ · the relaxed list-wise loss on K interesting and L uninteresting items per user.

    Each epoch, every user's K interesting items are drawn without replacement from the
    teacher's top N (its highest-scored items among those the user has not interacted
    with in training) with probability ∝ exp(−r/T) of their position r, and kept in the
    teacher's order; L uninteresting items are drawn uniformly from the rest of the
    catalogue (outside the top N and the user's training items). Defaults K = 40,
    L = 40, N = 100, T = 10 as in the authors' code. λ = 0.01 weighs the loss against
    BPR here: the paper tunes λ per dataset, and its code sums both losses over the batch
    where this averages them (BPR over triples, RRD over rows), which changes λ's scale.
    On one seed's validation NDCG@10 with the d = 10 student, λ = 0.01 and 0.1 were within
    0.001 of each other and λ = 0.001 was 0.008 lower. Uninteresting items are drawn with
    replacement.
    """

    name = "rrd"
    defaults = {"K": 40, "L": 40, "N": 100, "T": 10.0, "weight": 0.01}
    search_space = {"weight": Range(0.001, 0.1, log=True), "T": Range(1.0, 100.0, log=True)}
    """lambda over the values checked above, 0.001 to 0.1 (the paper tunes it per dataset); T a decade around 10.
    K, L and N are counts."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not 1 <= params["K"] <= params["N"]:
            raise ValueError(f"K must lie in [1, N], got K = {params['K']}, N = {params['N']}")
        if params["L"] < 0 or params["T"] <= 0 or params["weight"] < 0:
            raise ValueError("L and weight must not be negative, and T must be positive")

    def draw(self, ranking: Rankings, generator: torch.Generator) -> dict[str, torch.Tensor]:
        users = len(ranking.teacher_ranked)
        top = ranking.teacher_ranked[:, :self.N]
        odds = torch.exp(-torch.arange(1, self.N + 1, dtype=torch.float) / self.T).expand(users, -1)
        chosen = torch.multinomial(odds, self.K, replacement=False, generator=generator).sort(1).values
        excluded = self.task.seen_in_train.clone()
        excluded.scatter_(1, top, True)
        uninteresting = self.task.sample_unseen(torch.arange(users), self.L, generator, excluded)
        return {"items": torch.cat([top.gather(1, chosen), uninteresting], 1)}

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        listed = student.output[:, BPR_PAIR:]
        return {"task": self.task.loss(student.output, batch),
                "rrd": self.weight * relaxed_ranking_loss(listed[:, :self.K], listed[:, self.K:])}
