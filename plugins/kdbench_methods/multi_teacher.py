"""Distillation from an ensemble of teachers' soft targets, as in Hinton, Vinyals & Dean 2015 §1
("an ensemble of models ... distilled into a single model", arXiv:1503.02531) and You, Xu, Xu &
Tao, "Learning from Multiple Teacher Networks" (KDD 2017)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F

from kdbench import (
    Batch,
    IncompatibleCombination,
    Method,
    ModelOutput,
    Range,
    Task,
    Teacher,
    check_soft_target_params,
    kl_divergence,
)


class MultiTeacher(Method):
    """KD towards the (weighted) mean of several teachers' class distributions at temperature T.

    The teachers' probabilities, not their logits, are averaged — the ensemble's own
    prediction. ``weights`` (one per teacher, in the pair's order) defaults to equal.
    T and α as ``kd``'s, so one teacher reproduces ``kd`` exactly.
    """

    name = "multi-teacher"
    kinds = ("classification",)
    scheme = "offline"
    needs = "logits"
    max_teachers = 8
    defaults = {"T": 4.0, "alpha": 0.9, "weights": []}
    search_space = {"T": Range(1.0, 20.0, log=True), "alpha": Range(0.0, 1.0)}
    """As kd's: T from 1 to 20 (Hinton et al.), alpha over the blend; the per-teacher weights are the pair's."""

    def __init__(self, task: Task, teachers: list[Teacher], **params: Any) -> None:
        super().__init__(task, teachers, **params)
        if self.weights and len(self.weights) != len(teachers):
            raise IncompatibleCombination(
                f"multi-teacher: weights has {len(self.weights)} entries, the pair "
                f"{len(teachers)} teachers"
            )

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_soft_target_params(params)
        weights = params["weights"]
        valid = isinstance(weights, list) and all(isinstance(w, Real) and w >= 0 for w in weights)
        if not valid:
            raise ValueError(f"weights must be a list of non-negative numbers, got {weights!r}")
        if weights and sum(weights) <= 0:
            raise ValueError("weights must not all be zero")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        weights = torch.tensor(self.weights or [1.0] * len(teachers))
        log_weights = (weights / weights.sum()).log().view(-1, 1, 1)
        tempered = torch.stack([F.log_softmax(t.output / self.T, dim=1) for t in teachers])
        ensemble = (tempered + log_weights).logsumexp(0)
        soft = kl_divergence(ensemble, F.log_softmax(student.output / self.T, dim=1)) * self.T**2
        hard = self.task.loss(student.output, batch)
        return {"kd": self.alpha * soft, "task": (1 - self.alpha) * hard}
