"""Memory across a long suite: the process's resident memory after each run, in one process.

A suite of ``SEEDS`` seeds × (teacher, student-only, kd, dkd) on digits runs in-process;
resident memory is read after every run. Flat means no growth per run beyond the run's own
model: the figure is the slope of resident memory over the second half of the runs, and the
peak after a quarter, half and all of them. Run: ``python -m tests.benchmarks.bench_memory``.
"""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path

from tests.benchmarks.common import setup

SEEDS = int(os.environ.get("SEEDS", "12"))
SUITE = f"""
name: memory
seeds: {SEEDS}
tasks: [digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: [student-only, kd, dkd]
recipe:
  teacher: {{epochs: 1}}
  student: {{epochs: 1}}
"""


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.runner import Outcome, Progress, Runner
    from kdbench.suite import load_suite
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import Tracker

    setup()
    samples: list[tuple[float, float]] = []

    class Sampler(Progress):
        def end_run(self, outcome: Outcome) -> None:
            samples.append((resident_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))

    with tempfile.TemporaryDirectory() as folder:
        suite_file = Path(folder) / "memory.yaml"
        suite_file.write_text(SUITE)
        registry = Registry.load([])
        suite = load_suite(suite_file, registry)
        combinations = expand(suite, registry, task_instances(suite, registry))
        runner = Runner(registry, Tracker(f"sqlite:///{folder}/runs.db", "memory"),
                        TeacherCache(Path(folder)), progress=Sampler())
        runner.run(combinations)
    n = len(samples)
    half = samples[n // 2 :]
    xs = range(len(half))
    mean_x, mean_y = sum(xs) / len(half), sum(r for r, _ in half) / len(half)
    slope = sum((x - mean_x) * (r - mean_y) for x, (r, _) in zip(xs, half, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs)
    print(f"{n} runs in one process ({SEEDS} seeds x teacher, student-only, kd, dkd on digits)")
    for count in (n // 4, n // 2, n):
        print(f"after {count:3d} runs: resident {samples[count - 1][0]:7.1f} MB, peak {samples[count - 1][1]:7.1f} MB")
    print(f"growth over the second half: {slope * 1024:+.1f} KB per run")


if __name__ == "__main__":
    main()
