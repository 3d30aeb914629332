"""Temperature-softened class distributions and the KL divergences between them.

Shared by every method that distils soft targets, in whichever plugin it lives (KD, reverse KD,
DKD, LS-KD, multi-teacher, DML, GLNN, the data-free methods), so the one place that gets the
log-space arithmetic and the T² factor right is here, in the public API.
KL terms are computed from log-probabilities on both sides: feeding probabilities, or
averaging over classes instead of samples, are the two bugs most often shipped in KD code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) summed over classes and averaged over rows; rows are log-distributions."""
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                     reverse: bool = False, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL between teacher and student distributions at temperature T, averaged over rows, times T².

    Forward (Hinton et al. 2015) is KL(teacher ‖ student): the student must cover every class
    the teacher gives mass to. ``reverse`` gives KL(student ‖ teacher), which is mode-seeking:
    the student may ignore small teacher probabilities but is punished for mass the teacher
    lacks (Gu et al.'s argument for MiniLLM). The T² factor keeps the soft term's gradients
    the same size as the hard term's when T changes (the gradient of the KL scales as 1/T²).

    Logits are [..., classes]: a row per sample, or per position of a sequence (a language
    model's next-token distributions, token-level KD as DistilGPT2 and MiniLLM take it), with
    ``mask`` selecting the rows that count (a sequence's real positions, not its padding).
    """
    if mask is not None:
        student_logits, teacher_logits = student_logits[mask], teacher_logits[mask]
    classes = student_logits.shape[-1]
    log_student = F.log_softmax(student_logits.reshape(-1, classes) / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.reshape(-1, classes) / temperature, dim=-1)
    if reverse:
        return kl_divergence(log_student, log_teacher) * temperature**2
    return kl_divergence(log_teacher, log_student) * temperature**2


def check_soft_target_params(params: dict[str, Any], blended: bool = True) -> None:
    """Refuse a non-positive temperature and, when ``blended``, an α outside [0, 1].

    ``blended``: α mixes the soft and hard terms (Hinton KD and its kin), rather than
    weighting one term freely as DKD's α does.
    """
    if params["T"] <= 0:
        raise ValueError(f"T must be positive, got {params['T']}")
    if blended and not 0 <= params["alpha"] <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {params['alpha']}")
