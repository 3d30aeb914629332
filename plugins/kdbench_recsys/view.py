"""The ranking kind's training view: a BPR batch extended with the items a method distils on.

A ranking method learns from items the batch does not hold (the teacher's top K, items
sampled by rank). Once per epoch the method draws, for every user, the items (and any
per-item weights) it distils on; each step appends the rows' users' draws to the batch's
``items`` after the BPR pair, so one student call scores both and the task's BPR loss still
reads columns 0 and 1. Draws are per user and per epoch, as DE-RRD's code draws them; every
training row of a user reuses them in that epoch, so a user's distillation term weighs as
much as its BPR terms. Draws come from a stream of their own, seeded like the run.

The teacher is frozen, so its scores for every (user, item) — 943 × 1,682 on MovieLens-100K,
a few milliseconds — are asked of it once per run, as outputs on every item, and looked up
for each step's items: the method reads the teacher's outputs, never its network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from kdbench import Batch, ModelOutput, TrainContext, TrainingView
from kdbench_recsys.task import EVAL_USERS, RankingTask

if TYPE_CHECKING:
    from kdbench_recsys.distillation import RankingDistillation

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


@dataclass(frozen=True)
class Rankings:
    """What a method draws its items from, per user over every item (training items excluded)."""

    teacher_scores: torch.Tensor
    teacher_ranked: torch.Tensor
    """[users, r]: the teacher's item at position r."""
    teacher_rank: torch.Tensor
    """[users, items]: each item's position in the teacher's ranking."""
    student_rank: torch.Tensor | None
    """The same for the student at the epoch's start, for methods that ask (``uses_student_ranking``)."""


class RankingView(TrainingView):
    def __init__(self, context: TrainContext, generator: torch.Generator) -> None:
        super().__init__(context, generator)
        task = context.task
        assert isinstance(task, RankingTask)
        self.method: RankingDistillation = context.method  # type: ignore[assignment]
        self.everyone = torch.arange(task.num_users)
        items = torch.arange(task.num_items)
        (teacher,) = context.teachers
        self.teacher_scores = torch.cat([teacher.outputs({"user": users, "items": items}).output
                                         for users in self.everyone.split(EVAL_USERS)])
        self.teacher_ranked, self.teacher_rank = positions(self.teacher_scores, task.seen_in_train)
        self.draws = context.generator()
        self.drawn: dict[str, torch.Tensor] = {}

    def epoch_start(self, epoch: int) -> None:
        task: RankingTask = self.task  # type: ignore[assignment]
        student_rank = None
        if self.method.uses_student_ranking:
            student_rank = positions(task.scores(self.context.model, self.everyone), task.seen_in_train)[1]
        ranking = Rankings(self.teacher_scores, self.teacher_ranked, self.teacher_rank, student_rank)
        self.drawn = self.method.draw(ranking, self.draws)

    def batch(self, batch: Batch) -> Batch:
        """The batch with each row's user's drawn items appended to ``items`` and the rest added."""
        if not self.drawn:  # before the first epoch (the sample batch a method is set up on)
            return batch
        users = batch["user"]
        extended = {**batch, **{key: value[users] for key, value in self.drawn.items() if key != "items"}}
        extended["items"] = torch.cat([batch["items"], self.drawn["items"][users]], 1)
        return extended

    def teachers(self, batch: Batch) -> list[ModelOutput]:
        """The teacher's scores for every item of the batch, looked up."""
        return [ModelOutput(self.teacher_scores[batch["user"][:, None], batch["items"]], {})]
