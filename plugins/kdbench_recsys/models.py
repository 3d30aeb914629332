"""BPR matrix factorisation: a user and an item embedding table, score = their dot product.

The tables are the whole model, so a model's size is its embedding parameters,
(users + items) × dimension, and scoring one user against every item is one
vector-matrix product: the dimension sets both the memory and the serving latency.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task

INIT_STD = 0.1


class MatrixFactorisation(nn.Module):
    """score(u, i) = p_u · q_i; features ``user`` (p_u, [B, d]) and ``item`` (q_i, [n, d] or [B, n, d])."""

    def __init__(self, num_users: int, num_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(num_users, dim)
        self.items = nn.Embedding(num_items, dim)
        nn.init.normal_(self.users.weight, std=INIT_STD)
        nn.init.normal_(self.items.weight, std=INIT_STD)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> ModelOutput:
        p = self.users(users)
        # index_select rather than the embedding call: its backward is a plain scatter-add, three
        # times faster on CPU when a method scores 80 items per training row (RRD)
        q = self.items.weight.index_select(0, items.flatten()).view(*items.shape, -1)
        scores = p @ q.T if items.dim() == 1 else (q @ p[:, :, None])[:, :, 0]
        return ModelOutput(scores, {"user": p, "item": q})


def bpr_mf(dim: int) -> ModelSpec:
    def build(task: Task) -> nn.Module:
        return MatrixFactorisation(task.info["num_users"], task.info["num_items"], dim)

    return ModelSpec(f"bpr-mf-{dim}", build, ("ranking",), ("recommender",),
                     description=f"BPR matrix factorisation, user and item embeddings of dimension {dim}")


TEACHER = bpr_mf(200)
STUDENTS = (bpr_mf(20), bpr_mf(10))
