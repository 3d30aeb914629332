"""kdbench: a benchmarking harness for knowledge distillation.

This module is the public API plugins import; nothing else of kdbench is promised.
"""

import pluggy

from kdbench.data_root import cache_dir
from kdbench.datasets import DatasetFile, DatasetSpec
from kdbench.errors import IncompatibleCombination, UserError
from kdbench.kinds.classification import ClassificationTask, stratified_split
from kdbench.method import Method
from kdbench.model import ModelOutput, ModelSpec
from kdbench.model_call import call_model
from kdbench.recipe import Recipe
from kdbench.task import Batch, Task, TaskSpec
from kdbench.teacher_outputs import TeacherOutputs
from kdbench.training import TrainContext, run_epochs, train

hookimpl = pluggy.HookimplMarker("kdbench")

__all__ = [
    "Batch", "ClassificationTask", "DatasetFile", "DatasetSpec", "IncompatibleCombination", "Method",
    "ModelOutput", "ModelSpec", "Recipe", "Task", "TaskSpec", "TeacherOutputs", "TrainContext", "UserError",
    "cache_dir", "call_model", "hookimpl", "run_epochs", "stratified_split", "train",
]
