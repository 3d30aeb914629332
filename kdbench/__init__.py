"""kdbench: a benchmarking harness for knowledge distillation.

This module is the public API plugins import; nothing else of kdbench is promised.

Each name is imported from its submodule on first use (PEP 562), so that a process which
only parses arguments or checks a suite file (``kdbench --help``, a misspelt field) never
imports torch: ``from kdbench import Method`` works as before, at the cost of the import then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

hookimpl = pluggy.HookimplMarker("kdbench")

_HOMES = {
    "cache_dir": "kdbench.data_root",
    "DatasetFile": "kdbench.datasets", "DatasetSpec": "kdbench.datasets",
    "IncompatibleCombination": "kdbench.errors", "UserError": "kdbench.errors",
    "read_idx": "kdbench.idx",
    "Kind": "kdbench.kind", "Metric": "kdbench.kind",
    "ClassificationTask": "kdbench.kinds.classification", "stratified_split": "kdbench.kinds.classification",
    "Column": "kdbench.leaderboard.column",
    "Method": "kdbench.method",
    "ModelOutput": "kdbench.model", "ModelSpec": "kdbench.model",
    "call_model": "kdbench.model_call",
    "Recipe": "kdbench.recipe",
    "dataset": "kdbench.registry",
    "Run": "kdbench.run",
    "Choice": "kdbench.search_space", "Range": "kdbench.search_space",
    "check_soft_target_params": "kdbench.soft_targets", "kl_divergence": "kdbench.soft_targets",
    "soft_target_loss": "kdbench.soft_targets",
    "Batch": "kdbench.task", "Task": "kdbench.task", "TaskSpec": "kdbench.task",
    "ContractError": "kdbench.teacher", "Teacher": "kdbench.teacher",
    "BatchStream": "kdbench.training", "DivergedError": "kdbench.training", "TrainContext": "kdbench.training",
    "TrainingView": "kdbench.training", "run_training": "kdbench.training", "train": "kdbench.training",
    "StudentTransform": "kdbench.transform",
}
"""Each public name -> the submodule that defines it."""

__all__ = [
    "Batch", "BatchStream", "Choice", "ClassificationTask", "Column", "ContractError", "DatasetFile", "DatasetSpec",
    "DivergedError", "IncompatibleCombination", "Kind", "Method", "Metric", "ModelOutput", "ModelSpec",
    "Range", "Recipe", "Run", "StudentTransform", "Task", "TaskSpec", "Teacher", "TrainContext", "TrainingView",
    "UserError", "cache_dir", "call_model", "check_soft_target_params", "dataset", "hookimpl", "kl_divergence",
    "read_idx", "run_training", "soft_target_loss", "stratified_split", "train",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'kdbench' has no attribute '{name}'")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports this module used to make
    from kdbench.data_root import cache_dir
    from kdbench.datasets import DatasetFile, DatasetSpec
    from kdbench.errors import IncompatibleCombination, UserError
    from kdbench.idx import read_idx
    from kdbench.kind import Kind, Metric
    from kdbench.kinds.classification import ClassificationTask, stratified_split
    from kdbench.leaderboard.column import Column
    from kdbench.method import Method
    from kdbench.model import ModelOutput, ModelSpec
    from kdbench.model_call import call_model
    from kdbench.recipe import Recipe
    from kdbench.registry import dataset
    from kdbench.run import Run
    from kdbench.search_space import Choice, Range
    from kdbench.soft_targets import check_soft_target_params, kl_divergence, soft_target_loss
    from kdbench.task import Batch, Task, TaskSpec
    from kdbench.teacher import ContractError, Teacher
    from kdbench.training import BatchStream, DivergedError, TrainContext, TrainingView, run_training, train
    from kdbench.transform import StudentTransform
