"""Kim & Rush, "Sequence-Level Knowledge Distillation" (EMNLP 2016, arXiv:1606.07947)."""

from __future__ import annotations

from typing import Any

import torch

from kdbench import Batch, Method, ModelOutput, Range, TrainingView


class TeacherWritingView(TrainingView):
    """Every step, the teacher writes the second half of each window from its first half; the
    student learns from that text alone. The teacher is asked for text, never for outputs."""

    def batch(self, batch: Batch) -> Batch:
        teacher = self.context.teachers[0]
        return teacher.generate(batch, self.generator, temperature=self.context.method.temperature)

    def teachers(self, batch: Batch) -> list[ModelOutput]:
        return []


class SeqKD(Method):
    """Cross-entropy on text the teacher wrote: black-box, sequence-level distillation.

    Kim & Rush train the student on the teacher's beam-search translations of the training
    sources. A character model has no source sentence: the teacher continues each training
    window's first half, sampling at temperature 1, and the student is trained on the
    continuation. Sampling, not beam search: greedy and beam decoding of a character model
    settle into loops of a few words, which would teach the student the loop.
    """

    name = "seq-kd"
    kinds = ("language-modeling",)
    scheme = "offline"
    needs = "samples"
    view = TeacherWritingView
    defaults = {"temperature": 1.0}
    search_space = {"temperature": Range(0.5, 1.2)}
    """Below 1 the teacher's text is nearer its mode (what beam search aims at), above it more varied."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["temperature"] <= 0:
            raise ValueError(f"temperature must be positive, got {params['temperature']}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        return {"task": self.task.loss(student.output, batch)}
