"""Data-free distillation: students that never see a training input, and the LeNet-5 pair they are
published on.

kd-noise (the lower bound: KD on Gaussian noise), dafl (a generator taught by the teacher alone),
dfad (a generator playing against the student) and deepinversion (a pool of inputs optimised
against the teacher's BatchNorm statistics). Each is ``data_free``, so the runner hands it a task
whose training split raises; what they share is in ``synthetic``.
"""

from __future__ import annotations

from kdbench import Method, ModelSpec, hookimpl
from kdbench_datafree.dafl import DAFL
from kdbench_datafree.deepinversion import DeepInversion
from kdbench_datafree.dfad import DFAD
from kdbench_datafree.kd_noise import NoiseKD
from kdbench_datafree.models import LENET5_BN, LENET5_HALF


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [NoiseKD, DAFL, DFAD, DeepInversion]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [LENET5_BN]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [LENET5_HALF]
