"""The method contract: a method reads no more of its teacher than ``needs`` declares, and the
teacher-output cache follows the declaration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from kdbench import (
    Batch,
    ContractError,
    IncompatibleCombination,
    Method,
    ModelOutput,
    ModelSpec,
    Teacher,
    TrainContext,
    train,
)
from kdbench.registry import Registry
from kdbench.teacher import NEEDS
from tests.conftest import write_suite
from tests.methods_fixtures import TinyNet, student_net, teacher_net, tiny_task

TASK = tiny_task()
TEACHER = ModelSpec("tiny-teacher", lambda task: teacher_net(), kinds=("classification",))
STUDENT = ModelSpec("tiny-student", lambda task: student_net(), kinds=("classification",))


class Counting(nn.Module):
    """A teacher network that counts its forward calls."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.calls = 0

    def forward(self, x: torch.Tensor) -> ModelOutput:
        self.calls += 1
        return self.network(x)


def distil(method_class: type[Method], teachers: list[nn.Module], epochs: int = 1, **params) -> TrainContext:
    """Train a tiny student by ``method_class`` with a handle on each of ``teachers``, as the runner would."""
    task = tiny_task(epochs=epochs)
    handles = tuple(Teacher(task, t, method=method_class.name, needs=method_class.needs,
                            cached=task.deterministic(task.recipe("student"))) for t in teachers)
    context = TrainContext(task=task, model=student_net(), role="student", recipe=task.recipe("student"), seed=0,
                           method=method_class(task, list(handles), **params), teachers=handles,
                           build_model=lambda name=None: student_net() if name is None else TinyNet((4, 5, 6)))
    train(context)
    return context


def sneaky(needs: str, reads: str) -> type[Method]:
    class Sneaky(Method):
        name = "sneaky"
        kinds = None

        def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
            if reads == "model":
                self.teachers[0].model(batch["x"])
            elif reads == "features":
                teachers[0].features["stage3"]
            return {"task": self.task.loss(student.output, batch)}

    Sneaky.needs = needs
    return Sneaky


@pytest.mark.parametrize(("needs", "reads"), [("logits", "model"), ("features", "model"), ("logits", "features")])
def test_reading_more_of_the_teacher_than_declared_stops_the_run(needs: str, reads: str):
    with pytest.raises(ContractError, match=f"method sneaky declares needs = '{needs}' but read the teacher"):
        distil(sneaky(needs, reads), [teacher_net()])


@pytest.mark.parametrize(("needs", "reads"), [("model", "model"), ("model", "features"), ("features", "features")])
def test_what_is_declared_may_be_read(needs: str, reads: str):
    distil(sneaky(needs, reads), [teacher_net()])


def test_a_black_box_method_is_answered_from_the_cache_and_never_runs_the_teacher_while_training():
    teacher = Counting(teacher_net())
    context = distil(sneaky("logits", "nothing"), [teacher], epochs=3)
    batches = len(list(context.task.batches("train", None, None)))
    assert context.teachers[0].cached
    assert teacher.calls == batches  # the table, once over the training split; not 3 epochs of steps


def test_a_feature_method_is_never_answered_from_the_cache():
    teacher = Counting(teacher_net())
    context = distil(sneaky("features", "features"), [teacher], epochs=2)
    steps = 2 * len(list(context.task.batches("train", context.recipe, torch.Generator())))
    assert not context.teachers[0].cached
    assert teacher.calls == steps + 1  # every step, and once for setup's sample


def test_every_built_in_classification_method_trains_within_its_declaration():
    """Each registered method that serves classification, run through the engine on tiny nets with its
    teachers held to its ``needs``: one reading more would raise ``ContractError``."""
    registry = Registry.load()
    params = {"takd": {"assistant": "mlp-100"}, "multi-teacher": {}}
    ran = []
    for name in registry.methods.names():
        method = registry.methods.get(name)
        assert method.needs in NEEDS
        count = 0 if method.needs == "none" else min(2, method.max_teachers)
        try:  # whole-graph methods need a graph: the smoke and contract suites run those
            method.check(TASK, [TEACHER] * count, STUDENT)
        except IncompatibleCombination:
            continue
        distil(method, [teacher_net(seed=2 + i) for i in range(count)], **params.get(name, {}))
        ran.append(name)
    assert {"kd", "fitnets", "crd", "dml", "ban", "takd", "multi-teacher", "student-only"} <= set(ran)


def test_a_run_that_breaks_its_declaration_is_recorded_failed_with_the_reason(cli, isolated: Path):
    plugin = write_suite(isolated / "sneaky_plugin.py", '''
from kdbench import Method, hookimpl


class Sneaky(Method):
    name = "sneaky"
    kinds = None
    needs = "logits"

    def loss(self, batch, student, teachers):
        self.teachers[0].model(batch["x"])
        return {"task": self.task.loss(student.output, batch)}


@hookimpl
def kdbench_methods():
    return [Sneaky]
''')
    suite = write_suite(isolated / "sneaky.yaml", """
name: sneaky
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [sneaky]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
""")
    code, out, err = cli("run", suite, "--plugin", plugin)
    assert code == 1
    assert ("FAILED digits · mlp-30 · sneaky · seed 0: ContractError: method sneaky declares needs = 'logits' "
            "but read the teacher network; declare needs = 'model'") in " ".join(out.split())  # unwrapped


def test_a_teacher_handle_refuses_a_method_that_needs_none():
    with pytest.raises(ValueError, match="needs must be one of"):
        Teacher(tiny_task(), teacher_net(), method="x", needs="none", cached=False)
