"""A frozen teacher as the trainer sees it, with its outputs cached where that is honest.

When a method needs only the teacher's output (logits) and the student's training
inputs are the same every epoch, the teacher's outputs are computed once over the
training split and looked up by sample index; offline KD then costs about what
training the student alone costs. Otherwise the teacher runs on every batch.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench.model import ModelOutput
from kdbench.model_call import call_model
from kdbench.task import Batch, Task


class TeacherOutputs:
    def __init__(self, task: Task, model: nn.Module, cached: bool, table: torch.Tensor | None = None) -> None:
        """``table``: outputs computed earlier for the same teacher and task, reused as they are."""
        self.task = task
        self.model = model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.table: torch.Tensor | None = None
        if cached:
            self.table = table if table is not None else self._precompute()

    @property
    def cached(self) -> bool:
        return self.table is not None

    @torch.no_grad()
    def _precompute(self) -> torch.Tensor | None:
        rows: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        for batch in self.task.batches("train", None, None):
            output = call_model(self.model, self.task.model_input(batch, "teacher")).output
            if not isinstance(output, torch.Tensor):
                return None  # structured outputs are not cached
            rows.append(output)
            indices.append(batch["index"])
        table = torch.empty((self.task.num_train, *rows[0].shape[1:]), dtype=rows[0].dtype)
        table[torch.cat(indices)] = torch.cat(rows)
        return table

    @torch.no_grad()
    def outputs(self, batch: Batch) -> ModelOutput:
        """The teacher's output (and features, when not cached) on ``batch``."""
        if self.table is not None:
            return ModelOutput(self.table[batch["index"]], {})
        return call_model(self.model, self.task.model_input(batch, "teacher"))
