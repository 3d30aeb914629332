"""The baseline without a teacher: a method too, so baselines are rows of the same table."""

from __future__ import annotations

import torch

from kdbench import Batch, Method, ModelOutput


class StudentOnly(Method):
    """The student trained on hard labels alone (the task's own loss), no teacher."""

    name = "student-only"
    kinds = ("classification", "ranking", "denoising", "dense")
    scheme = "none"
    needs = "none"
    baseline = True

    def loss(self, batch: Batch, student: ModelOutput,
             teacher: ModelOutput | None) -> dict[str, torch.Tensor]:
        return {"task": self.task.loss(student.output, batch)}
