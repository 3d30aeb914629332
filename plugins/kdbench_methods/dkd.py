"""Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation" (CVPR 2022,
arXiv:2203.08679)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range, check_soft_target_params, kl_divergence, soft_target_loss

_EXCLUDED = -1e9
"""A logit that softmax turns into exactly zero probability in float32 (as mdistiller's −1000)."""


def decoupled_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                 temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each averaged over the batch and times T².

    TCKD is the KL between the binary (target class, all others) distributions; NCKD the KL
    between the distributions over the non-target classes alone. Hinton KD is, per sample,
    TCKD + (1 − p_t)·NCKD with p_t the teacher's target probability: the factor suppresses
    NCKD exactly where the teacher is confident, which is the paper's point.
    """
    is_target = F.one_hot(target, student_logits.shape[1]).bool()

    def binary(logits: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits / temperature, dim=1)
        target_part = log_probs.masked_fill(~is_target, float("-inf")).logsumexp(1)
        rest = log_probs.masked_fill(is_target, float("-inf")).logsumexp(1)
        return torch.stack([target_part, rest], dim=1)

    tckd = kl_divergence(binary(teacher_logits), binary(student_logits)) * temperature**2
    nckd = soft_target_loss(student_logits.masked_fill(is_target, _EXCLUDED),
                            teacher_logits.masked_fill(is_target, _EXCLUDED), temperature)
    return tckd, nckd


class DKD(Method):
    """Cross-entropy plus α·TCKD + β·NCKD, the distillation terms ramped in linearly.

    Paper defaults (CIFAR-100): α = 1, β = 8, T = 4, a 20-epoch warm-up of a 240-epoch run.
    ``warmup`` is that ramp as a share of the run's epochs (20/240), so a short CPU run keeps
    the paper's proportion: the factor is min(epoch / (warmup · epochs), 1), epoch counted
    from 1 as mdistiller does; 0 turns the warm-up off.
    """

    name = "dkd"
    kinds = ("classification",)
    scheme = "offline"
    needs = "logits"
    defaults = {"alpha": 1.0, "beta": 8.0, "T": 4.0, "warmup": 20 / 240}
    search_space = {"alpha": Range(0.5, 2.0, log=True), "beta": Range(1.0, 10.0), "T": Range(1.0, 20.0, log=True)}
    """alpha a factor 2 around the paper's 1 (it holds alpha and sweeps beta from 1 to 10); T as kd's. The warm-up
    is a schedule, kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        check_soft_target_params(params, blended=False)
        for key in ("alpha", "beta"):
            if params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {params[key]}")
        if not 0 <= params["warmup"] <= 1:
            raise ValueError(f"warmup is a share of the epochs, in [0, 1]; got {params['warmup']}")

    def ramp(self) -> float:
        """The warm-up factor for the current epoch."""
        length = self.warmup * self.epochs
        return min(self.epoch / length, 1.0) if length > 0 else 1.0

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        tckd, nckd = decoupled_kd(student.output, teacher.output, batch["y"], self.T)
        ramp = self.ramp()
        return {
            "task": self.task.loss(student.output, batch),
            "tckd": ramp * self.alpha * tckd,
            "nckd": ramp * self.beta * nckd,
        }
