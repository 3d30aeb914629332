"""Helpers shared by the method tests: a tiny random classification task, tiny named-feature
models, and a check that a method's loss is finite and reaches every parameter it claims."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from kdbench import Batch, ClassificationTask, Method, ModelOutput, Recipe, Teacher, call_model

CLASSES = 4


@pytest.fixture(autouse=True)
def one_thread(isolated: Any) -> None:
    """Method tests run single-threaded (after conftest's per-test setup picks its default)."""
    torch.set_num_threads(1)


def tiny_task(n: int = 64, epochs: int = 2, seed: int = 0, val: bool = True) -> ClassificationTask:
    """A 4-class task of random 1×8×8 "images" whose label is a fixed linear function of them."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 32, 1, 8, 8, generator=generator)
    y = (x.flatten(1) @ torch.randn(64, CLASSES, generator=generator)).argmax(1)
    splits = {"train": (x[:n], y[:n]), "test": (x[n + 16:], y[n + 16:])}
    if val:
        splits["val"] = (x[n:n + 16], y[n:n + 16])
    recipe = Recipe(epochs=epochs, batch_size=16, lr=0.05, schedule="constant")
    return ClassificationTask(splits, CLASSES, {"teacher": recipe, "student": recipe})


class TinyNet(nn.Module):
    """Three conv stages named like the vision models' (``stage1..3``) plus ``embedding``.

    ``stride3`` sets the last stage's spatial size (4×4 or 2×2) so that tests can give
    teacher and student maps of different sizes.
    """

    def __init__(self, widths: tuple[int, int, int] = (3, 4, 5), stride3: int = 1) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(widths[0], widths[1], 3, padding=1, stride=2),
                                    nn.ReLU())
        self.stage3 = nn.Sequential(nn.Conv2d(widths[1], widths[2], 3, padding=1, stride=stride3),
                                    nn.ReLU())
        self.head = nn.Linear(widths[2], CLASSES)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        embedding = s3.mean((2, 3))
        features = {"stage1": s1, "stage2": s2, "stage3": s3, "embedding": embedding}
        return ModelOutput(self.head(embedding), features)


def student_net(seed: int = 1) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet((3, 4, 5), stride3=2)


def teacher_net(seed: int = 2) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet((4, 6, 8), stride3=1).eval()


def first_batch(task: ClassificationTask) -> Batch:
    generator = torch.Generator().manual_seed(0)
    return next(iter(task.batches("train", task.recipe("student"), generator)))


def check_loss_trains(method_class: type[Method], params: dict[str, Any] | None = None,
                      teachers: int = 1) -> dict[str, torch.Tensor]:
    """Set the method up on tiny nets, take one loss, and check it is finite and reaches the student
    and every parameter the method claims; returns the loss terms."""
    task = tiny_task()
    student = student_net()
    teacher_models = [teacher_net(seed=2 + i) for i in range(teachers)]
    handles = [Teacher(task, t, method=method_class.name, needs=method_class.needs, cached=False)
               for t in teacher_models]
    method = method_class(task, handles, **(params or {}))
    batch = first_batch(task)
    with torch.no_grad():
        teacher_outputs = [handle.outputs(batch) for handle in handles]
        sample = call_model(student, batch["x"])
    method.setup(sample, teacher_outputs)
    terms = method.loss(batch, call_model(student, batch["x"]), teacher_outputs)
    total = sum(terms.values())
    assert torch.isfinite(total), terms
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    for name, parameter in method.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name
    return terms
