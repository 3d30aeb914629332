"""Compression: the student quantised to int8 (after training, or trained for it) or pruned by channels.

Each transform wraps whatever method trains the student, so a suite's table shows what distillation
adds on top of compressing it. The libraries doing the work were chosen by measurement on the CPU the
compressed students are timed on; each transform's ``backend`` names its own.
"""

from __future__ import annotations

from kdbench import StudentTransform, hookimpl
from kdbench_compress.prune import Pruned
from kdbench_compress.qat import Int8QAT
from kdbench_compress.quantize import Int8Dynamic


@hookimpl
def kdbench_transforms() -> list[type[StudentTransform]]:
    return [Int8Dynamic, Int8QAT, Pruned]
