"""Vision: digit and clothing classification (scikit-learn's 8×8 digits, MNIST, Fashion-MNIST) with MLP and CNN
models."""

from __future__ import annotations

from kdbench import DatasetSpec, ModelSpec, TaskSpec, hookimpl
from kdbench_vision import models
from kdbench_vision.digits import build_digits
from kdbench_vision.mnist import FASHION_MNIST_FILES, MNIST_FILES, build_fashion_mnist, build_mnist


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [
        TaskSpec("digits", "classification", "vision", build_digits,
                 "scikit-learn's bundled 8×8 digits (1,797 images); no data root needed",
                 options={"split_seed": 0}),
        TaskSpec("mnist", "classification", "vision", build_mnist,
                 "MNIST from its four canonical IDX files; 5,000 training images held out for validation",
                 options={"val_size": 5000, "split_seed": 0}),
        TaskSpec("fashion-mnist", "classification", "vision", build_fashion_mnist,
                 "Fashion-MNIST from its four canonical IDX files; 5,000 training images held out for validation",
                 options={"val_size": 5000, "split_seed": 0}),
    ]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [models.HINTON_TEACHER, models.CNN_LARGE]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [models.HINTON_STUDENT, models.MLP_100, models.MLP_30, models.CNN_MEDIUM,
            models.CNN_SMALL]


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("mnist", MNIST_FILES, "MNIST handwritten digits (LeCun, Cortes, Burges)", "CC BY-SA 3.0"),
            DatasetSpec("fashion-mnist", FASHION_MNIST_FILES,
                        "Fashion-MNIST clothing images (Xiao, Rasul & Vollgraf 2017, Zalando Research)", "MIT")]
