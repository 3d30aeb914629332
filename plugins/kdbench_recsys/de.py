"""Kang, Hwang, Kweon & Yu, "DE-RRD: A Knowledge Distillation Framework for Recommender System"
(CIKM 2020, arXiv:2012.04357): distillation experts (DE)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Method, ModelOutput, Range


class DistillationExperts(nn.Module):
    """Experts that map the student's representation into the teacher's space, and a selection
    network that, from the teacher's representation, picks one expert per entity.

    Each expert is a two-layer MLP from the student's width to the teacher's through their
    mean width; the pick is a hard Gumbel-softmax sample (straight-through), so each entity
    is reconstructed by one expert while the choice stays differentiable. Different regions
    of the teacher's space get different experts, rather than one linear map for all of it.
    """

    def __init__(self, student_dim: int, teacher_dim: int, count: int) -> None:
        super().__init__()
        hidden = (student_dim + teacher_dim) // 2
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(student_dim, hidden), nn.ReLU(), nn.Linear(hidden, teacher_dim))
            for _ in range(count))
        self.selector = nn.Linear(teacher_dim, count)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """Squared distance between the teacher's representation and the selected expert's
        reconstruction, summed over dimensions and averaged over entities."""
        student, teacher = student.reshape(-1, student.shape[-1]), teacher.reshape(-1, teacher.shape[-1])
        choice = F.gumbel_softmax(self.selector(teacher), tau=temperature, hard=True)
        mapped = torch.stack([expert(student) for expert in self.experts], 1)
        return ((choice[:, :, None] * mapped).sum(1) - teacher).pow(2).sum(1).mean()



class DE(Method):
    """BPR + λ · (DE loss on the batch's users + DE loss on its items), through experts.

    The teacher's user and item embeddings are distilled into the student's through
    separate sets of M experts (``DistillationExperts``); the experts are trained with the
    student and thrown away after. The Gumbel-softmax temperature anneals exponentially
    from 1 at the first epoch to ``final_temperature`` at the last. Defaults: M = 5 experts
    as in the paper's main setting; λ = 0.01 (the paper tunes λ per dataset). Difference
    from the paper: the temperature stops at 0.01 rather than 10⁻¹⁰, where the straight-through
    gradient of the selector is already a hard choice and smaller values only risk overflow.
    """

    name = "de"
    kinds = ("ranking",)
    scheme = "offline"
    needs = "features"
    defaults = {"experts": 5, "weight": 0.01, "final_temperature": 0.01}
    search_space = {"weight": Range(0.001, 0.1, log=True), "final_temperature": Range(0.01, 1.0, log=True)}
    """lambda a decade either side of 0.01 (the paper tunes it per dataset); the anneal's end from 0.01 (below it
    only risks overflow) to 1 (no anneal)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["experts"] < 1:
            raise ValueError(f"experts must be at least 1, got {params['experts']}")
        if params["weight"] < 0 or not 0 < params["final_temperature"] <= 1:
            raise ValueError("weight must not be negative and final_temperature must lie in (0, 1]")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        student_dim, teacher_dim = student_out.features["user"].shape[-1], teacher_out.features["user"].shape[-1]
        self.users = DistillationExperts(student_dim, teacher_dim, self.experts)
        self.items = DistillationExperts(student_dim, teacher_dim, self.experts)

    def temperature(self) -> float:
        """1 at the first epoch, ``final_temperature`` at the last, geometric in between."""
        progress = (self.epoch - 1) / max(self.epochs - 1, 1)
        return math.exp(progress * math.log(self.final_temperature))

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        tau = self.temperature()
        distance = (self.users(student.features["user"], teacher.features["user"], tau)
                    + self.items(student.features["item"], teacher.features["item"], tau))
        return {"task": self.task.loss(student.output, batch), "de": self.weight * distance}
