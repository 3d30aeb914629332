"""Expanding a suite into combinations, each with its resolved config and hash.

A combination is one MLflow run: a teacher being trained, a student-only baseline,
or a student distilled by a method. Its config holds everything that affects its
result (task options, architectures, resolved recipes, method parameters, seed,
checkpoint rule), so its hash is the run's identity across invocations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kdbench.errors import IncompatibleCombination
from kdbench.hashing import canonical_json, config_hash
from kdbench.method import Method
from kdbench.model import ModelSpec
from kdbench.recipe import Recipe
from kdbench.registry import Registry
from kdbench.suite import Case, MethodEntry, Suite, TaskEntry
from kdbench.task import Task, TaskSpec

PROTOCOL = 1
"""Bumped when a change to the harness makes old results incomparable."""


@dataclass
class Combination:
    role: str
    """'teacher', 'student' (no teacher) or 'distill'."""
    task_spec: TaskSpec
    task: Task
    task_options: dict[str, Any]
    seed: int
    checkpoint: str
    model_spec: ModelSpec
    """The model this run trains: the teacher for teacher runs, else the student."""
    recipe: Recipe
    teachers: list[Combination] = field(default_factory=list)
    """The teacher runs a distillation run learns from (several for multi-teacher methods)."""
    method: type[Method] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variant: str = ""
    skip_reason: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    @property
    def label(self) -> str:
        who = self.model_spec.name if self.role == "teacher" else f"{self.model_spec.name} · {self.variant}"
        return f"{self.task_spec.name} · {who} · seed {self.seed}"

    def tags(self) -> dict[str, str]:
        return {
            "kdbench.task": self.task_spec.name,
            "kdbench.modality": self.task_spec.modality,
            "kdbench.kind": self.task_spec.kind,
            "kdbench.teacher": "+".join(t.model_spec.name for t in self.teachers) or (
                self.model_spec.name if self.role == "teacher" else "-"),
            "kdbench.student": "-" if self.role == "teacher" else self.model_spec.name,
            "kdbench.method": "teacher" if self.role == "teacher" else self.method.name,
            "kdbench.variant": "teacher" if self.role == "teacher" else self.variant,
            "kdbench.seed": str(self.seed),
            "kdbench.role": self.role,
            "kdbench.config_hash": self.key,
            "kdbench.checkpoint": self.checkpoint,
            "kdbench.primary_metric": self.task.primary_metric,
            "kdbench.higher_is_better": str(self.task.higher_is_better).lower(),
        }


def _finish(combination: Combination) -> Combination:
    combination.key = config_hash(combination.config)
    return combination


def expand(suite: Suite, registry: Registry, tasks: dict[str, Task]) -> list[Combination]:
    """All combinations of a suite, teachers first, in a stable order; no duplicates."""
    teachers: dict[str, Combination] = {}
    students: dict[str, Combination] = {}
    for case in suite.all_cases():
        assert case.seeds is not None
        names = Counter(entry.name for entry in case.methods)
        for task_entry in case.tasks:
            spec = registry.tasks.get(task_entry.name)
            options = {**spec.options, **task_entry.options}
            task = tasks[_task_id(task_entry, options)]
            for seed in case.seeds:
                seeded = task.for_seed(seed)
                for pair in case.pairs:
                    pair_teachers = []
                    for name in pair.teachers:
                        teacher = _teacher(suite, case, spec, seeded, options, registry.teachers.get(name), seed)
                        pair_teachers.append(teachers.setdefault(teacher.key, teacher))
                    student_spec = registry.students.get(pair.student)
                    for entry in case.methods:
                        repeated = names[entry.name] > 1
                        for point in entry.points():
                            combination = _student(suite, case, spec, seeded, options, student_spec, pair_teachers,
                                                   registry.methods.get(entry.name), entry, point, seed, repeated)
                            students.setdefault(combination.key, combination)
    return list(teachers.values()) + list(students.values())


def task_instances(suite: Suite, registry: Registry) -> dict[str, Task]:
    """Build each distinct (task, options) once; building reads the data, so errors surface early."""
    built: dict[str, Task] = {}
    for case in suite.all_cases():
        for entry in case.tasks:
            spec = registry.tasks.get(entry.name)
            options = {**spec.options, **entry.options}
            ident = _task_id(entry, options)
            if ident not in built:
                built[ident] = spec.build(**options)
    return built


def _task_id(entry: TaskEntry, options: dict[str, Any]) -> str:
    return entry.name + canonical_json(options)


def _recipe(suite: Suite, case: Case, task: Task, spec: ModelSpec, role: str) -> Recipe:
    return task.recipe(role).updated(spec.recipe).updated(suite.recipe_overrides(case, role))


def _teacher(suite: Suite, case: Case, spec: TaskSpec, task: Task, options: dict[str, Any],
             model: ModelSpec, seed: int) -> Combination:
    recipe = _recipe(suite, case, task, model, "teacher")
    combination = Combination(
        role="teacher", task_spec=spec, task=task, task_options=options, seed=seed,
        checkpoint=suite.checkpoint, model_spec=model, recipe=recipe,
    )
    combination.config = {
        "protocol": PROTOCOL, "role": "teacher", "task": {"name": spec.name, "options": options},
        "model": {"name": model.name, "recipe": recipe.model_dump()}, "seed": seed,
        "checkpoint": suite.checkpoint,
    }
    try:
        model.check(task, spec.modality, "teacher")
    except IncompatibleCombination as reason:
        combination.skip_reason = str(reason)
    return _finish(combination)


def _student(suite: Suite, case: Case, spec: TaskSpec, task: Task, options: dict[str, Any],
             model: ModelSpec, teachers: list[Combination], method: type[Method], entry: MethodEntry,
             params: dict[str, Any], seed: int, repeated: bool = False) -> Combination:
    if method.needs == "none":  # baselines, peers and self-distillation learn from no pre-trained teacher
        teachers = []
    recipe = _recipe(suite, case, task, model, "student")
    resolved = {**method.defaults, **params}
    # Rows must not merge different configs: name the grid's keys, and every set parameter
    # when the case lists the method more than once (kd at T = 4 and kd at T = 20).
    shown = sorted({*entry.grid, *(entry.params if repeated else {})})
    variant = method.name + ("[" + ",".join(f"{k}={params[k]}" for k in shown) + "]" if shown else "")
    combination = Combination(
        role="distill" if teachers else "student", task_spec=spec, task=task,
        task_options=options, seed=seed, checkpoint=suite.checkpoint, model_spec=model, recipe=recipe,
        teachers=teachers, method=method, params=resolved, variant=variant,
    )
    combination.config = {
        "protocol": PROTOCOL, "role": combination.role, "task": {"name": spec.name, "options": options},
        "teacher": _teachers_config(teachers),
        "student": {"name": model.name, "recipe": recipe.model_dump()},
        "method": {"name": method.name, "params": resolved}, "seed": seed, "checkpoint": suite.checkpoint,
    }
    try:
        model.check(task, spec.modality, "student")
        method.check(task, [t.model_spec for t in teachers], model)
        for teacher in teachers:
            if teacher.skip_reason:
                raise IncompatibleCombination(f"teacher: {teacher.skip_reason}")
    except IncompatibleCombination as reason:
        combination.skip_reason = str(reason)
    return _finish(combination)


def _teachers_config(teachers: list[Combination]) -> dict[str, Any] | list[dict[str, Any]] | None:
    """One teacher's config as is (so single-teacher hashes stay put), a list for several."""
    if not teachers:
        return None
    return teachers[0].config if len(teachers) == 1 else [t.config for t in teachers]
