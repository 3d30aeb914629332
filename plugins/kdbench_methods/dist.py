"""Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A Stronger Teacher" (DIST,
NeurIPS 2022, arXiv:2205.10536)."""

from __future__ import annotations

from typing import Any

import torch

from kdbench import Batch, Method, ModelOutput, Range


def pearson_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 − Pearson correlation between matching rows of ``a`` and ``b``, averaged over rows."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    correlation = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
    return 1 - correlation.mean()


class DIST(Method):
    """Cross-entropy plus relations, not values, of the class probabilities at temperature τ.

    Inter-class: per sample, the Pearson correlation of the student's and teacher's class
    probabilities (a stronger teacher's exact probabilities are hard to match, their ranking
    is not). Intra-class: per class, the correlation across the batch. Loss: CE + τ²(β·inter +
    γ·intra), with the official code's ImageNet defaults β = γ = τ = 1.
    """

    name = "dist"
    kinds = ("classification",)
    scheme = "offline"
    needs = "logits"
    defaults = {"beta": 1.0, "gamma": 1.0, "tau": 1.0}
    search_space = {"beta": Range(0.25, 4.0, log=True), "gamma": Range(0.25, 4.0, log=True),
                    "tau": Range(0.5, 8.0, log=True)}
    """Around the official code's settings: beta = gamma = tau = 1 (ImageNet), beta = gamma = 2, tau = 4 (CIFAR-100)."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["tau"] <= 0:
            raise ValueError(f"tau must be positive, got {params['tau']}")
        for key in ("beta", "gamma"):
            if params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {params[key]}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        p_s = (student.output / self.tau).softmax(1)
        p_t = (teacher.output / self.tau).softmax(1)
        scale = self.tau**2
        return {
            "task": self.task.loss(student.output, batch),
            "inter": self.beta * scale * pearson_distance(p_s, p_t),
            "intra": self.gamma * scale * pearson_distance(p_s.T, p_t.T),
        }
