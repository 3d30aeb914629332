"""Teacher-output cache: offline KD's wall time against student-only for the same student.

With the cache the teacher's logits are computed once over the training split and looked
up by sample index, so KD should cost about what training the student alone costs (target
≤ 1.15×); without it the teacher runs on every batch of every epoch. Hinton's MNIST MLPs
(1200 → 800), ``EPOCHS`` epochs each (default 3), interleaved rounds, the best of each.
Run: ``KDBENCH_DATA=… python -m tests.benchmarks.bench_teacher_outputs``.
"""

from __future__ import annotations

import os

from tests.benchmarks.common import THREADS, distillation_context, mnist_pair, seconds, setup

EPOCHS = int(os.environ.get("EPOCHS", "3"))


def main() -> None:
    from kdbench.training import train

    setup()
    task, teacher, fresh_student, registry = mnist_pair()
    recipe = task.recipe("student").updated({"epochs": EPOCHS})

    def run(method: str, cached: bool | None) -> float:
        student = fresh_student()

        def work() -> None:  # the teacher's table is part of KD's cost: it is built, on first use, inside the timing
            train(distillation_context(task, student, recipe, registry.methods.get(method),
                                       teacher if cached is not None else None, cached=bool(cached)))

        return seconds(work)

    times: dict[str, list[float]] = {"student-only": [], "kd, cached logits": [], "kd, teacher every batch": []}
    for _ in range(2):
        times["student-only"].append(run("student-only", None))
        times["kd, cached logits"].append(run("kd", True))
        times["kd, teacher every batch"].append(run("kd", False))
    base = min(times["student-only"])
    print(f"threads {THREADS}; {EPOCHS} MNIST epochs, hinton-mlp-1200 -> hinton-mlp-800, best of 2 interleaved rounds")
    for name, values in times.items():
        print(f"{name:<26} {min(values):7.1f} s   {min(values) / base:.3f}x student-only")
    print("target: kd with cached logits <= 1.15x student-only")


if __name__ == "__main__":
    main()
