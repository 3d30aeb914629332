"""What the ranking-distillation methods share: the ranking view, and the items each one draws.

A method of this family is its ``draw`` (which items, per user and epoch, it distils on)
and its ``loss`` on the extended batch; ``RankingView`` does the rest.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from kdbench import Method
from kdbench_recsys.view import Rankings, RankingView


class RankingDistillation(Method):
    kinds = ("ranking",)
    scheme = "offline"
    needs = "logits"
    view = RankingView
    uses_student_ranking: ClassVar[bool] = False
    """Whether ``draw`` reads the student's current ranking (recomputed at each epoch's start)."""

    def draw(self, ranking: Rankings, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """This epoch's items to distil on per user, ``{"items": [users, n], ...}``; further
        entries ([users, ...]) reach ``loss`` as batch entries of the same name, row by row."""
        raise NotImplementedError
