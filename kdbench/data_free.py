"""Data-free distillation's proof: the task a data-free method is given has no training inputs.

A data-free method (``Method.data_free``) claims its student never sees a training input: it
learns from noise, a generator, or inputs optimised against the teacher. A claim on a leaderboard
should be checked, not trusted, so the runner hands such a method — its training context, and the
teacher handles it reads through — a copy of the task whose ``batches('train')`` raises. Evaluation
(validation for checkpoints, test for the table) still reads its own splits. The guard covers the
task's API; a method reaching into a plugin's private tensors is outside any contract.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from kdbench.task import Batch, Task


class TrainingInputRead(RuntimeError):
    """A data-free method asked for the training split."""


def without_training_inputs(task: Task, method: str) -> Task:
    """``task`` as a data-free ``method`` sees it: the same data and evaluation, its training split
    withheld (the copy is shallow, so nothing is duplicated)."""
    hidden = copy.copy(task)
    real = task.batches

    def batches(split: str, *args: Any, **kwargs: Any) -> Iterator[Batch]:
        if split == "train":
            raise TrainingInputRead(f"method {method} is declared data-free but asked for the training split's "
                                    "batches")
        return real(split, *args, **kwargs)

    hidden.batches = batches  # type: ignore[method-assign]  # the instance's own, shadowing the class's
    return hidden
