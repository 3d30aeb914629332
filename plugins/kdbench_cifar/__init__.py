"""CIFAR-100 (Krizhevsky 2009) from its canonical archive, with the CIFAR model zoo of RepDistiller
(Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020): resnet8x4 … ShuffleNetV2."""

from __future__ import annotations

from kdbench import DatasetSpec, ModelSpec, TaskSpec, hookimpl
from kdbench_cifar import cifar100, models


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [
        TaskSpec("cifar100", "classification", "vision", cifar100.build_cifar100,
                 "CIFAR-100 fine labels from cifar-100-python.tar.gz; 5,000 training images held out for validation",
                 options={"val_size": 5000, "split_seed": 0}),
    ]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return list(models.TEACHERS)


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return list(models.STUDENTS)


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    # Read from the module at each call, so a test can point CIFAR100_FILES at a file of its own.
    return [DatasetSpec("cifar100", cifar100.CIFAR100_FILES, cifar100.DESCRIPTION, cifar100.LICENCE)]
