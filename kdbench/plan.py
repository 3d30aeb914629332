"""Expanding a suite into combinations, each with its resolved config and hash.

A combination is one MLflow run: a teacher being trained, a student-only baseline,
or a student distilled by a method. Its config holds everything that affects its
result (task options, architectures, resolved recipes, method parameters, seed,
checkpoint rule), so its hash is the run's identity across invocations. A combination
is built whole and never changed: its key is taken over the config it was built with.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kdbench.errors import IncompatibleCombination, SuiteError
from kdbench.hashing import canonical_json, config_hash
from kdbench.method import Method
from kdbench.model import ModelSpec
from kdbench.recipe import Recipe
from kdbench.registry import Registry
from kdbench.suite import Case, MethodEntry, PairEntry, Suite, TaskEntry
from kdbench.task import Task, TaskSpec
from kdbench.transform import NO_TRANSFORM, StudentTransform, parse

PROTOCOL = 1
"""Bumped when a change to the harness makes old results incomparable."""


@dataclass(frozen=True, eq=False)
class Combination:
    role: str
    """'teacher', 'student' (no teacher) or 'distill'."""
    task_spec: TaskSpec
    task: Task
    """The task as this seed sees it (``Task.for_seed``)."""
    seed: int
    checkpoint: str
    model_spec: ModelSpec
    """The model this run trains: the teacher for teacher runs, else the student."""
    recipe: Recipe
    config: dict[str, Any]
    teachers: tuple[Combination, ...] = ()
    """The teacher runs a distillation run learns from (several for multi-teacher methods)."""
    method: type[Method] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variant: str = ""
    skip_reason: str | None = None
    split: str = "test"
    """The split the run is scored on: test, or val for a tuning trial (which never sees test)."""
    transform: StudentTransform | None = None
    """What is done to the student around its training (``kdbench.transform``); ``None``: fp32."""
    deployment: bool = False
    """Measure the student as deployed too: batch 64 beside batch 1, all cores beside one (a
    case that lists transforms asks; it is a measurement, so not part of the key)."""
    init: Combination | None = None
    """The run whose final student weights this one starts from (a case's ``init``); its config is
    part of this one's."""
    keeps_weights: bool = False
    """Another run starts from this one's weights, so they are kept in the cache, as a teacher's are."""
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", config_hash(self.config))

    @property
    def saves_weights(self) -> bool:
        """Its trained weights go to the cache: a teacher's, or a student's that others start from."""
        return self.role == "teacher" or self.keeps_weights

    @property
    def dependencies(self) -> tuple[Combination, ...]:
        """The runs that must finish first: its teachers, and the run it starts from."""
        return self.teachers + ((self.init,) if self.init is not None else ())

    @property
    def student(self) -> str:
        """The student a leaderboard row names: the architecture, where it started when not from
        scratch, and its transform when it has one, so each row is compared with the baseline that
        started and was compressed as it was."""
        if self.role == "teacher":
            return "-"
        start = f"+from-{self.init.variant}" if self.init is not None else ""
        return self.model_spec.name + start + (f"+{self.transform.label}" if self.transform is not None else "")

    @property
    def label(self) -> str:
        who = self.model_spec.name if self.role == "teacher" else f"{self.student} · {self.variant}"
        return f"{self.task_spec.name} · {who} · seed {self.seed}"

    def tags(self) -> dict[str, str]:
        return {
            "kdbench.task": self.task_spec.name,
            "kdbench.modality": self.task_spec.modality,
            "kdbench.kind": self.task_spec.kind,
            "kdbench.teacher": "+".join(t.model_spec.name for t in self.teachers) or (
                self.model_spec.name if self.role == "teacher" else "-"),
            "kdbench.student": self.student,
            "kdbench.method": "teacher" if self.method is None else self.method.name,
            "kdbench.variant": "teacher" if self.method is None else self.variant,
            "kdbench.seed": str(self.seed),
            "kdbench.role": self.role,
            "kdbench.config_hash": self.key,
            "kdbench.checkpoint": self.checkpoint,
            "kdbench.primary_metric": self.task.primary_metric,
            "kdbench.higher_is_better": str(self.task.higher_is_better).lower(),
            **self._tuning_tags(),
            **({"kdbench.transform": self.transform.label, "kdbench.transform_backend": self.transform.backend}
               if self.transform is not None else {}),
            **({"kdbench.init": self.init.key} if self.init is not None else {}),
        }

    def _tuning_tags(self) -> dict[str, str]:
        """A trial names its study and number; a run at tuned values names the study that chose them."""
        note = self.config.get("tuning")
        if note is None:
            return {}
        if self.role == "trial":
            return {"kdbench.study": note["study"], "kdbench.trial": str(note["trial"])}
        return {"kdbench.tuned": note["study"]}


@dataclass(frozen=True)
class _Point:
    """One place in a suite's grid: a case's task at a seed, with a pair."""

    suite: Suite
    case: Case
    spec: TaskSpec
    options: dict[str, Any]
    task: Task
    seed: int
    pair: PairEntry


def expand(suite: Suite, registry: Registry, tasks: dict[str, Task]) -> list[Combination]:
    """All combinations of a suite, teachers first, a run before those that start from it, in a
    stable order; no duplicates."""
    teachers: dict[str, Combination] = {}
    students: dict[str, Combination] = {}
    sources = {(case.init.case, case.init.method) for case in suite.all_cases() if case.init is not None}
    starts: dict[tuple[str, str, int, str, str], Combination] = {}
    """Runs others start from, by (case, task, seed, student, method)."""
    for point in _points(suite, registry, tasks):
        pair_teachers = []
        for name in point.pair.teachers:
            teacher = _teacher(point, registry.teachers.get(name))
            pair_teachers.append(teachers.setdefault(teacher.key, teacher))
        student = registry.students.get(point.pair.student)
        init = _start(point, starts)
        repeated = Counter(entry.name for entry in point.case.methods)
        assert point.case.transforms is not None
        for label in point.case.transforms:
            transform = parse(label, registry.transforms.entries, "transforms")
            for entry in point.case.methods:
                for params in entry.points():
                    combination = _student(point, student, tuple(pair_teachers), registry.methods.get(entry.name),
                                           entry, params, repeated[entry.name] > 1, transform, init)
                    combination = replace(combination, deployment=point.case.transforms != [NO_TRANSFORM])
                    combination = students.setdefault(combination.key, combination)
                    if (point.case.name, entry.name) in sources and transform is None:
                        kept = replace(combination, keeps_weights=True)
                        students[kept.key] = kept
                        where = (point.case.name, point.spec.name, point.seed, student.name, entry.name)
                        if starts.setdefault(where, kept).key != kept.key:
                            raise SuiteError(f"case '{point.case.name}' runs {entry.name} at several settings, and a "
                                             "case starts from it: init needs one")
    return list(teachers.values()) + list(students.values())


def _start(point: _Point, starts: dict[tuple[str, str, int, str, str], Combination]) -> Combination | None:
    """The run a point's students start from, or ``None`` for a case that starts from scratch."""
    init = point.case.init
    if init is None:
        return None
    source = starts.get((init.case, point.spec.name, point.seed, point.pair.student, init.method))
    if source is None:
        raise SuiteError(f"case '{point.case.name}': case '{init.case}' has no fp32 run of {init.method} with task "
                         f"'{point.spec.name}', student '{point.pair.student}' and seed {point.seed} to start from")
    return source


def _points(suite: Suite, registry: Registry, tasks: dict[str, Task]) -> Iterator[_Point]:
    for case in suite.all_cases():
        assert case.seeds is not None
        for task_entry, seed in itertools.product(case.tasks, case.seeds):
            spec = registry.tasks.get(task_entry.name)
            options = {**spec.options, **task_entry.options}
            task = tasks[_task_id(task_entry, options)].for_seed(seed)  # one view per seed, shared by its pairs
            for pair in case.pairs:
                yield _Point(suite, case, spec, options, task, seed, pair)


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


def _recipe(point: _Point, spec: ModelSpec, role: str) -> Recipe:
    recipe = point.task.recipe(role).updated(spec.recipe).updated(point.suite.recipe_overrides(point.case, role))
    if recipe.train_examples is not None:
        where = f"recipe.{role}.train_examples"
        if not point.task.trains_on_subsets:
            raise SuiteError(f"{where}: task '{point.spec.name}' cannot train on a subset of its examples")
        if recipe.train_examples > point.task.num_train:
            raise SuiteError(f"{where}: {recipe.train_examples} is more than task '{point.spec.name}''s "
                             f"{point.task.num_train} training examples")
    return recipe


def _teacher(point: _Point, model: ModelSpec) -> Combination:
    recipe = _recipe(point, model, "teacher")
    config = {
        "protocol": PROTOCOL, "role": "teacher", "task": {"name": point.spec.name, "options": point.options},
        "model": {"name": model.name, "recipe": recipe.model_dump()}, "seed": point.seed,
        "checkpoint": point.suite.checkpoint,
    }
    return Combination(role="teacher", task_spec=point.spec, task=point.task, seed=point.seed,
                       checkpoint=point.suite.checkpoint, model_spec=model, recipe=recipe, config=config,
                       skip_reason=_incompatible(lambda: model.check(point.task, point.spec.modality, "teacher")))


def _student(point: _Point, model: ModelSpec, teachers: tuple[Combination, ...], method: type[Method],
             entry: MethodEntry, params: dict[str, Any], repeated: bool,
             transform: StudentTransform | None, init: Combination | None) -> Combination:
    if method.needs == "none":  # baselines, peers and self-distillation learn from no pre-trained teacher
        teachers = ()
    recipe = _recipe(point, model, "student")
    resolved = {**method.defaults, **params}
    # Rows must not merge different configs: name the grid's keys, and every set parameter
    # when the case lists the method more than once (kd at T = 4 and kd at T = 20).
    shown = sorted({*entry.grid, *(entry.params if repeated else {})})
    variant = method.name + ("[" + ",".join(f"{k}={params[k]}" for k in shown) + "]" if shown else "")
    role = "distill" if teachers else "student"
    config = {
        "protocol": PROTOCOL, "role": role, "task": {"name": point.spec.name, "options": point.options},
        "teacher": _teachers_config(teachers),
        "student": {"name": model.name, "recipe": recipe.model_dump(),
                    # fp32 adds nothing, so rows from before transforms existed keep their keys
                    **({"transform": transform.config()} if transform is not None else {})},
        "method": {"name": method.name, "params": resolved}, "seed": point.seed,
        "checkpoint": point.suite.checkpoint,
        # from scratch adds nothing, so rows from before init existed keep their keys
        **({"init": init.config} if init is not None else {}),
    }

    def check() -> None:
        model.check(point.task, point.spec.modality, "student")
        method.check(point.task, [t.model_spec for t in teachers], model)
        if transform is not None:
            transform.check(point.task, model, method)
            if transform.fine_tune(recipe) is not None and method.fit is not Method.fit:
                raise IncompatibleCombination(f"{transform.label} fine-tunes through the training engine, and "
                                              f"method {method.name} owns its training scheme")
        for teacher in teachers:
            if teacher.skip_reason:
                raise IncompatibleCombination(f"teacher: {teacher.skip_reason}")
        if init is not None and init.skip_reason:
            raise IncompatibleCombination(f"init: {init.skip_reason}")

    return Combination(role=role, task_spec=point.spec, task=point.task, seed=point.seed,
                       checkpoint=point.suite.checkpoint, model_spec=model, recipe=recipe, config=config,
                       teachers=teachers, method=method, params=resolved, variant=variant,
                       skip_reason=_incompatible(check), transform=transform, init=init)


def retuned(combination: Combination, params: dict[str, Any], recipe: dict[str, Any], note: dict[str, Any],
            trial: bool) -> Combination:
    """The student combination with searched parameters and recipe fields: a tuning trial (scored on
    val, role 'trial') or the final run with the values a study chose; ``note`` joins its config
    (the study, and the trial or the protocol), so neither shares a key with an untuned run."""
    resolved = {**combination.params, **params}
    student = combination.recipe.updated(recipe)
    config = {**combination.config, "method": {"name": combination.config["method"]["name"], "params": resolved},
              "student": {**combination.config["student"], "recipe": student.model_dump()}, "tuning": note}
    role = "trial" if trial else combination.role
    return replace(combination, role=role, recipe=student, params=resolved, config={**config, "role": role},
                   split="val" if trial else "test")


def _incompatible(check: Any) -> str | None:
    """The reason ``check()`` gives that a combination cannot run, or ``None``."""
    try:
        check()
    except IncompatibleCombination as reason:
        return str(reason)
    return None


def _teachers_config(teachers: tuple[Combination, ...]) -> dict[str, Any] | list[dict[str, Any]] | None:
    """One teacher's config as is (so single-teacher hashes stay put), a list for several."""
    if not teachers:
        return None
    return teachers[0].config if len(teachers) == 1 else [t.config for t in teachers]
