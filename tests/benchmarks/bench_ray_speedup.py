"""Ray scale-out: eight independent small runs, 2 workers × 1 thread against 1 worker × 1 thread.

Each side is a fresh ``kdbench run --executor ray`` process with its own tracking store and
teacher cache, so Ray's start-up is inside both timings (target ≥ 1.7× speed-up). The runs
are four teachers (Hinton's 1200-unit MLP) and four student-only students (800-unit),
``EPOCHS`` MNIST epochs each (default 2; a suite always trains its pair's teacher per seed;
the students wait for none of them). Each side also prints its fixed part, which more workers
do not shrink: the seconds before the first run starts (the driver's imports, a new MLflow
store, Ray's start, the first worker's imports) and after the last one ends (the summary,
Ray's shutdown), read from the runs' MLflow start and end times. The shorter the runs, the
larger that share, and the smaller the speed-up.
Needs two idle cores. Run: ``KDBENCH_DATA=… python -m tests.benchmarks.bench_ray_speedup``.
"""

from __future__ import annotations

import os
import sqlite3
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


def wall_time(workers: int, folder: Path) -> tuple[float, float]:
    """(wall seconds, fixed seconds: before the first run started plus after the last one ended)."""
    suite = folder / "ray-speedup.yaml"
    suite.write_text(SUITE.replace("EPOCHS", str(EPOCHS)))
    environment = {**os.environ, "KDBENCH_THREADS": "1", "KDBENCH_CACHE": str(folder / "cache"),
                   "RAY_AUTH_MODE": "disabled"}
    launched, started = time.time(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "kdbench.cli", "run", str(suite), "--executor", "ray",
                    "--max-parallel", str(workers), "--tracking-uri", f"sqlite:///{folder / 'runs.db'}"],
                   env=environment, check=True, capture_output=True, cwd=folder)
    wall = time.perf_counter() - started
    with sqlite3.connect(folder / "runs.db") as store:
        first, last = store.execute("SELECT MIN(start_time), MAX(end_time) FROM runs").fetchone()
    return wall, (first / 1000 - launched) + (launched + wall - last / 1000)


def main() -> None:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        (serial, serial_fixed), (parallel, parallel_fixed) = wall_time(1, Path(one)), wall_time(2, Path(two))
    print(f"8 MNIST runs of {EPOCHS} epoch(s) on Ray, 1 thread per worker (cores: {os.cpu_count()})")
    print(f"1 worker   {serial:7.1f} s  (of which {serial_fixed:.1f} s before the first run and after the last)")
    print(f"2 workers  {parallel:7.1f} s  (of which {parallel_fixed:.1f} s before the first run and after the last)")
    print(f"speed-up   {serial / parallel:.2f}x  (target >= 1.7x)")


if __name__ == "__main__":
    main()
