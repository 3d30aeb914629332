"""Top-K ranking metrics for one held-out item per user: NDCG@K, Recall@K (= HR@K), MRR@K.

Everything reduces to the held-out item's rank among the user's candidates. Ties count
against the model: the rank is the number of other candidates scoring at least as high, so
a model that scores every item the same ranks the held-out item last rather than first.
"""

from __future__ import annotations

import torch


def target_rank(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of column ``targets[u]`` in row u of ``scores`` (candidates masked to -inf never count)."""
    target_scores = scores.gather(1, targets[:, None])
    return (scores >= target_scores).sum(1) - 1


def ranking_metrics(ranks: torch.Tensor, cutoff: int, prefix: str = "") -> dict[str, float]:
    """Mean NDCG, recall and MRR at ``cutoff`` over users, named e.g. ``ndcg_10``.

    With one relevant item the ideal DCG is 1, so NDCG@K is 1 / log2(rank + 2) inside the
    top K and 0 outside; recall@K is then the hit rate, and MRR@K is 1 / (rank + 1).
    """
    hit = ranks < cutoff
    position = ranks.double() + 1
    return {
        f"{prefix}ndcg_{cutoff}": (hit / torch.log2(position + 1)).mean().item(),
        f"{prefix}recall_{cutoff}": hit.double().mean().item(),
        f"{prefix}mrr_{cutoff}": (hit / position).mean().item(),
    }


def top_overlap(scores: torch.Tensor, reference: torch.Tensor, cutoff: int) -> float:
    """Mean share of the reference's top ``cutoff`` items that are also in the top ``cutoff`` of ``scores``."""
    ours = scores.topk(cutoff, 1).indices
    theirs = reference.topk(cutoff, 1).indices
    shared = (ours[:, :, None] == theirs[:, None, :]).any(2).sum(1)
    return shared.double().mean().item() / cutoff

