"""The baseline without a teacher: a method too, so baselines are rows of the same table."""

from __future__ import annotations

import torch

from kdbench import Batch, Method, ModelOutput


class StudentOnly(Method):
    """The student trained on the task's own loss alone (hard labels), no teacher: any kind's baseline
    where the student is trained at all."""

    name = "student-only"
    kinds = None
    scheme = "none"
    needs = "none"

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        return {"task": self.task.loss(student.output, batch)}
