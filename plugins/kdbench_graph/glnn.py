"""Zhang, Liu, Sun & Shah, "Graph-less Neural Networks: Teaching Old MLPs New Tricks via
Distillation" (GLNN, ICLR 2022, arXiv:2110.08727)."""

from __future__ import annotations

from typing import Any

import torch

from kdbench import Batch, ModelOutput, Range, soft_target_loss
from kdbench_graph.transductive import WholeGraphMethod


class GLNN(WholeGraphMethod):
    """λ · cross-entropy on the labelled nodes + (1 − λ) · KL(teacher ‖ student) on every node.

    The soft targets cover the unlabelled nodes too (transductive), which is what lets an
    MLP that never sees an edge absorb what the teacher learnt from the graph. KL at
    temperature 1 between the class distributions, averaged over nodes, as the authors'
    code computes it; λ = 0 is their default (soft targets alone). The authors take two
    optimiser steps per epoch, one per term; this takes one step on the weighted sum, the
    paper's stated objective.
    """

    name = "glnn"
    needs = "logits"
    defaults = {"lamb": 0.0}
    search_space = {"lamb": Range(0.0, 1.0)}
    """The paper's lambda in [0, 1] (the authors' default 0: soft targets alone)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not 0 <= params["lamb"] <= 1:
            raise ValueError(f"lamb must lie in [0, 1], got {params['lamb']}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        soft = soft_target_loss(student.output, teacher.output, 1.0)
        return {"task": self.lamb * self.labelled(batch, student), "glnn": (1 - self.lamb) * soft}
