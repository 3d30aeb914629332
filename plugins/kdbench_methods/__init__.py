"""Built-in distillation methods, one module each; registered through the ``kdbench`` entry point."""

from __future__ import annotations

from kdbench import Method, hookimpl
from kdbench_methods.kd import KD
from kdbench_methods.student_only import StudentOnly


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [StudentOnly, KD]
