"""The baseline of step distillation: the undistilled teacher, sampled with N DDIM steps."""

from __future__ import annotations

from torch import nn

from kdbench import Method
from kdbench_diffusion.sampling import Sampler


class DDIMN(Method):
    """No training: the teacher itself, sampled with deterministic DDIM at each of the task's step counts.

    The row every step-distillation method is measured against (the "student-only" of the
    denoising kind): what fewer steps cost without any distillation. It samples the teacher
    network itself, so it needs the model, not only outputs.
    """

    name = "ddim-n"
    kinds = ("denoising",)
    scheme = "offline"
    needs = "model"

    def train_steps(self) -> int:
        return 0

    def trained(self, student: nn.Module) -> nn.Module:
        return Sampler(self.teachers[0].model, "ddim", self.task.info["steps"])
