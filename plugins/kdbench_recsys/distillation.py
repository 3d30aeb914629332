"""What the ranking-distillation methods share: the frozen teacher's ranking, and a training
step that scores the student on the items a method picks beside each BPR pair.

A ranking method learns from items the batch does not hold (the teacher's top-K, items
sampled by rank). It owns its loop only to add them: once per epoch it draws, for every
user, the items (and any per-item weights) it distils on, and each step appends the rows'
users' draws to the batch's ``items`` after the BPR pair, so one student call scores both
and the task's BPR loss still reads columns 0 and 1. Draws are per user and per epoch,
as DE-RRD's code draws them; every training row of a user reuses them in that epoch, so a
user's distillation term weighs as much as its BPR terms.

The teacher is frozen, so its scores for every (user, item) — 943 × 1,682 on MovieLens-100K,
a few milliseconds — are computed once per run and the teacher is never called again.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from kdbench import Batch, Method, ModelOutput, TeacherOutputs, TrainContext, call_model, run_epochs
from kdbench_recsys.task import RankingTask

BPR_PAIR = 2
"""Columns of ``items`` that hold the BPR pair; a method's own items follow."""


def positions(scores: torch.Tensor, excluded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's ranking of the items ``excluded`` does not mark, best first.

    Returns (ranked, rank): ``ranked[u, r]`` is the item at 0-based position r, excluded
    items last; ``rank[u, i]`` is item i's position (the inverse permutation).
    """
    ranked = scores.masked_fill(excluded, float("-inf")).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(ranked)
    rank.scatter_(1, ranked, torch.arange(scores.shape[1]).expand_as(ranked).contiguous())
    return ranked, rank


class RankingDistillation(Method):
    kinds = ("ranking",)
    scheme = "offline"
    needs = "logits"
    uses_student_ranking: ClassVar[bool] = False
    """Whether ``draw`` reads the student's current ranking (recomputed at each epoch's start)."""

    def draw(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """This epoch's items to distil on per user, ``{"items": [users, n], ...}``; further
        entries ([users, ...]) reach ``loss`` as batch entries of the same name, row by row."""
        raise NotImplementedError

    def fit(self, context: TrainContext) -> nn.Module:
        task = context.task
        assert isinstance(task, RankingTask) and isinstance(context.teacher, TeacherOutputs)
        everyone = torch.arange(task.num_users)
        self.teacher_scores = task.scores(context.teacher.model, everyone)
        self.teacher_ranked, self.teacher_rank = positions(self.teacher_scores, task.seen_in_train)
        generator = context.generator()
        drawn: dict[str, torch.Tensor] = {}
        drawn_in = 0

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            nonlocal drawn, drawn_in
            if drawn_in != self.epoch:
                if self.uses_student_ranking:
                    self.student_rank = positions(task.scores(context.model, everyone), task.seen_in_train)[1]
                drawn, drawn_in = self.draw(generator), self.epoch
            extended = self.extend(batch, drawn)
            student = call_model(context.model, task.model_input(extended, context.role))
            return self.loss(extended, student, self.teacher_output(extended))

        return run_epochs(context, step)

    @staticmethod
    def extend(batch: Batch, drawn: dict[str, torch.Tensor]) -> Batch:
        """The batch with each row's user's drawn items appended to ``items`` and the rest added."""
        users = batch["user"]
        extended = {**batch, **{key: value[users] for key, value in drawn.items() if key != "items"}}
        extended["items"] = torch.cat([batch["items"], drawn["items"][users]], 1)
        return extended

    def teacher_output(self, batch: Batch) -> ModelOutput:
        """The teacher's scores for every item of the batch, looked up."""
        return ModelOutput(self.teacher_scores[batch["user"][:, None], batch["items"]], {})
