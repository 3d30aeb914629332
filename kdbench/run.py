"""A run as the lifecycle hooks see it: what is trained, on what, how, and where it is logged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdbench.model import ModelSpec
from kdbench.recipe import Recipe
from kdbench.task import Task, TaskSpec

if TYPE_CHECKING:
    from kdbench.method import Method
    from kdbench.plan import Combination


@dataclass(frozen=True)
class Run:
    run_id: str
    """Its MLflow run id: a plugin may log more to the same run."""
    role: str
    """'teacher' (training one), 'student' (no teacher) or 'distill'."""
    task_spec: TaskSpec
    task: Task
    model: ModelSpec
    """The model this run trains: the teacher for a teacher run, else the student."""
    teachers: tuple[ModelSpec, ...]
    """The teachers a student learns from (empty for teacher and teacher-free runs)."""
    method: type[Method] | None
    params: Mapping[str, Any]
    """The method's resolved hyper-parameters."""
    recipe: Recipe
    seed: int
    config: Mapping[str, Any]
    """The full resolved config the run's key is the hash of."""
    key: str

    @classmethod
    def of(cls, combination: Combination, run_id: str) -> Run:
        return cls(run_id=run_id, role=combination.role, task_spec=combination.task_spec, task=combination.task,
                   model=combination.model_spec, teachers=tuple(t.model_spec for t in combination.teachers),
                   method=combination.method, params=dict(combination.params), recipe=combination.recipe,
                   seed=combination.seed, config=combination.config, key=combination.key)
