"""Ray scale-out: eight independent small runs, 2 workers × 1 thread against 1 worker × 1 thread.

Each side is a fresh ``kdbench run --executor ray`` process with its own tracking store and
teacher cache, so Ray's start-up is inside both timings (target ≥ 1.7× speed-up). The runs
are four teachers (Hinton's 1200-unit MLP) and four student-only students (800-unit),
``EPOCHS`` MNIST epochs each (default 2; a suite always trains its pair's teacher per seed;
the students wait for none of them). About 22 s of each timing does not shrink with more
workers (measured on an idle machine: the driver's imports, a new MLflow store and Ray's
start take 15 s before the first job, a worker's imports and first optimizer 8 s), so the
speed-up is the fixed part's share: 1.71× with one-epoch runs, more with longer ones.
Needs two idle cores. Run: ``KDBENCH_DATA=… python -m tests.benchmarks.bench_ray_speedup``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPOCHS = int(os.environ.get("EPOCHS", "2"))
SUITE = """
name: ray-speedup
seeds: 4
tasks: [mnist]
pairs:
  - {teacher: hinton-mlp-1200, student: hinton-mlp-800}
methods: [student-only]
recipe:
  teacher: {epochs: EPOCHS}
  student: {epochs: EPOCHS}
"""


def wall_time(workers: int, folder: Path) -> float:
    suite = folder / "ray-speedup.yaml"
    suite.write_text(SUITE.replace("EPOCHS", str(EPOCHS)))
    environment = {**os.environ, "KDBENCH_THREADS": "1", "KDBENCH_CACHE": str(folder / "cache"),
                   "RAY_AUTH_MODE": "disabled"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kdbench.cli", "run", str(suite), "--executor", "ray",
                    "--max-parallel", str(workers), "--tracking-uri", f"sqlite:///{folder / 'runs.db'}"],
                   env=environment, check=True, capture_output=True, cwd=folder)
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        serial = wall_time(1, Path(one))
        parallel = wall_time(2, Path(two))
    print(f"8 MNIST runs of {EPOCHS} epoch(s) on Ray, 1 thread per worker (cores: {os.cpu_count()})")
    print(f"1 worker   {serial:7.1f} s")
    print(f"2 workers  {parallel:7.1f} s")
    print(f"speed-up   {serial / parallel:.2f}x  (target >= 1.7x)")


if __name__ == "__main__":
    main()
