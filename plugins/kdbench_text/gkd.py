"""Agarwal et al., "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes"
(GKD; ICLR 2024, arXiv:2306.13649), with the defaults of TRL's implementation
(trl/trainer/gkd_config.py, trl/trainer/gkd_trainer.py)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range, TrainingView


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float,
                    mask: torch.Tensor) -> torch.Tensor:
    """The generalised Jensen–Shannon divergence per position, averaged over ``mask``'s positions.

    With M = β·teacher + (1 − β)·student (mixed in log space), JSD(β) = β·KL(teacher ‖ M) +
    (1 − β)·KL(student ‖ M). As in TRL the ends are the two KLs themselves — β = 0 the forward
    KL(teacher ‖ student), β = 1 the reverse KL(student ‖ teacher) — where the mixture form
    would vanish.
    """
    student = F.log_softmax(student_logits[mask], -1)
    teacher = F.log_softmax(teacher_logits[mask], -1)
    if beta == 0:
        per_position = (teacher.exp() * (teacher - student)).sum(-1)
    elif beta == 1:
        per_position = (student.exp() * (student - teacher)).sum(-1)
    else:
        mixture = torch.logsumexp(torch.stack([teacher + math.log(beta), student + math.log1p(-beta)]), 0)
        per_position = (beta * (teacher.exp() * (teacher - mixture)).sum(-1)
                        + (1 - beta) * (student.exp() * (student - mixture)).sum(-1))
    return per_position.sum() / mask.sum().clamp(min=1)


class OnPolicyView(TrainingView):
    """With probability λ (the method's ``lmbda``) a step trains on the student's own writing: each
    window's first half is kept as a prompt and the student, sampling at the method's
    ``temperature``, writes the rest; the loss then covers the written positions only. Otherwise
    the step trains on the windows as they are. The teacher is run on whichever it is."""

    def batch(self, batch: Batch) -> Batch:
        method = self.context.method
        if torch.rand((), generator=self.generator).item() >= method.lmbda:
            return batch
        return self.task.generate(self.context.model, batch, self.generator, temperature=method.temperature)


class GKD(Method):
    """Generalised JSD(β) between student and teacher, token by token, on a λ share of batches the
    student wrote itself (on-policy) and on the training text otherwise.

    Defaults are TRL's ``GKDConfig``: β = 0.5, λ = 0.5, sampling temperature 0.9; the divergence
    at temperature 1, as TRL's ``compute_loss`` calls it; no cross-entropy term. Differences:
    TRL continues dataset prompts by up to 128 new tokens and scores only the completion, even on
    off-policy batches; here a prompt is half a window, and an off-policy batch scores every
    position of its window, since the text has no prompt/completion split.
    """

    name = "gkd"
    kinds = ("language-modeling",)
    scheme = "offline"
    needs = "model"
    view = OnPolicyView
    defaults = {"beta": 0.5, "lmbda": 0.5, "temperature": 0.9}
    search_space = {"beta": Range(0.0, 1.0), "lmbda": Range(0.0, 1.0)}
    """β over the whole forward-to-reverse range and λ from off- to fully on-policy: the paper's
    sweeps; the sampling temperature stays TRL's."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not 0 <= params["beta"] <= 1 or not 0 <= params["lmbda"] <= 1:
            raise ValueError("beta and lmbda must lie in [0, 1]")
        if params["temperature"] <= 0:
            raise ValueError(f"temperature must be positive, got {params['temperature']}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        return {"jsd": generalized_jsd(student.output, teachers[0].output, self.beta, batch["mask"])}
