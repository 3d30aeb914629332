"""The baseline of step distillation: the undistilled teacher, sampled with N DDIM steps."""

from __future__ import annotations

from torch import nn

from kdbench import Method, TrainContext
from kdbench_diffusion.sampling import Sampler


class DDIMN(Method):
    """No training: the teacher itself, sampled with deterministic DDIM at each of the task's step counts.

    The row every step-distillation method is measured against (the "student-only" of the
    denoising kind): what fewer steps cost without any distillation.
    """

    name = "ddim-n"
    kinds = ("denoising",)
    scheme = "offline"
    needs = "logits"
    baseline = True

    def fit(self, context: TrainContext) -> nn.Module:
        return Sampler(context.teacher.model, "ddim", context.task.info["steps"])
