"""What the benchmark scripts share: one thread, the MNIST task and models from the registry,
and a kdbench training context built the way the runner builds it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

THREADS = int(os.environ.get("KDBENCH_THREADS", "1"))


def setup() -> None:
    """Pin the thread count: every figure here is a ratio of two timings taken with the same threads."""
    torch.set_num_threads(THREADS)


def registry():  # noqa: ANN201
    from kdbench.registry import Registry

    return Registry.load([])


def mnist_pair(teacher: str = "hinton-mlp-1200", student: str = "hinton-mlp-800"):  # noqa: ANN201
    """(task, trained-enough teacher, fresh student builder): the teacher gets one quick epoch, since
    only timings are measured."""
    from kdbench.training import TrainContext, train

    found = registry()
    task = found.tasks.get("mnist").build(**found.tasks.get("mnist").options)
    recipe = task.recipe("teacher").updated({"epochs": 1})
    torch.manual_seed(0)
    model = found.teachers.get(teacher).build(task)
    trained = train(TrainContext(task=task, model=model, role="teacher", recipe=recipe, seed=0))

    def fresh_student() -> torch.nn.Module:
        torch.manual_seed(0)
        return found.students.get(student).build(task)

    return task, trained, fresh_student, found


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def distillation_context(task, student, recipe, method_class, teacher, cached: bool, **extra):  # noqa: ANN001, ANN201
    """A training context as the runner builds it: the method holds a handle on the teacher (when it has
    one), its outputs cached by sample index when ``cached``."""
    from kdbench import Teacher, TrainContext

    teachers = () if teacher is None else (
        Teacher(task, teacher, method=method_class.name, needs=method_class.needs, cached=cached),)
    return TrainContext(task=task, model=student, role="student", recipe=recipe, seed=0,
                        method=method_class(task, list(teachers)), teachers=teachers, **extra)
