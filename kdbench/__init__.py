"""kdbench: a benchmarking harness for knowledge distillation.

This module is the public API plugins import; nothing else of kdbench is promised.
"""

import pluggy

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

hookimpl = pluggy.HookimplMarker("kdbench")

__all__ = [
    "Batch", "BatchStream", "Choice", "ClassificationTask", "Column", "ContractError", "DatasetFile", "DatasetSpec",
    "DivergedError", "IncompatibleCombination", "Kind", "Method", "Metric", "ModelOutput", "ModelSpec",
    "Range", "Recipe", "Run", "StudentTransform", "Task", "TaskSpec", "Teacher", "TrainContext", "TrainingView",
    "UserError", "cache_dir", "call_model", "check_soft_target_params", "dataset", "hookimpl", "kl_divergence",
    "read_idx", "run_training", "soft_target_loss", "stratified_split", "train",
]
