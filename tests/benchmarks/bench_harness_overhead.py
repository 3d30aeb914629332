"""Harness overhead: kdbench's KD training step vs a minimal hand-written PyTorch loop.

Both train the same student (Hinton's 800-unit MLP) on the same MNIST batches with the same
KD loss against cached teacher logits, on the same threads; the figure is the ratio of median
step times (target ≤ 1.05×). Run: ``KDBENCH_DATA=… python tests/benchmarks/bench_harness_overhead.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from tests.benchmarks.common import THREADS, distillation_context, mnist_pair, setup


def kdbench_step_times(task, teacher, student, recipe, method_class) -> list[float]:  # noqa: ANN001
    from kdbench.training import train

    stamps: list[float] = []
    train(distillation_context(task, student, recipe, method_class, teacher, cached=True,
                               on_batch=lambda: stamps.append(time.perf_counter())))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def hand_step_times(task, teacher, student, recipe) -> list[float]:  # noqa: ANN001
    """The same work written directly: logits table, shuffled batches, KD loss, SGD."""
    with torch.no_grad():
        x, y = task.splits["train"]
        table = torch.cat([teacher(x[i : i + 1000])[0] for i in range(0, len(y), 1000)])
    optimizer = torch.optim.SGD(student.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    temperature, alpha = 4.0, 0.9
    stamps: list[float] = []
    student.train()
    for start in range(0, len(y), recipe.batch_size):
        index = order[start : start + recipe.batch_size]
        logits = student(x[index])[0]
        soft = F.kl_div(F.log_softmax(logits / temperature, 1), F.softmax(table[index] / temperature, 1),
                        reduction="batchmean") * temperature**2
        loss = alpha * soft + (1 - alpha) * F.cross_entropy(logits, y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> None:
    setup()
    task, teacher, fresh_student, registry = mnist_pair()
    recipe = task.recipe("student").updated({"epochs": 1})
    kd = registry.methods.get("kd")
    rounds = {"kdbench": [], "hand": []}
    for _ in range(3):  # interleaved, so drift in machine load hits both alike
        rounds["kdbench"].append(statistics.median(kdbench_step_times(task, teacher, fresh_student(), recipe, kd)))
        rounds["hand"].append(statistics.median(hand_step_times(task, teacher, fresh_student(), recipe)))
    ours, hand = min(rounds["kdbench"]), min(rounds["hand"])
    print(f"threads {THREADS}; median step over one MNIST epoch, best of 3 interleaved rounds")
    print(f"kdbench KD step  {ours * 1e3:.3f} ms")
    print(f"hand-written     {hand * 1e3:.3f} ms")
    print(f"harness overhead {ours / hand:.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
