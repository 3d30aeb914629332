"""A small MLflow store written by hand, with the tags the runner writes, for leaderboard tests.

The values are chosen so every statistic can be worked out on paper:

task ``toy`` (accuracy, higher is better), teacher ``big``, student ``small``:
    teacher       0.90 0.92 0.94   mean 0.92  std 0.02
    student-only  0.80 0.82 0.84   mean 0.82  std 0.02
    kd            0.86 0.87 0.88   mean 0.87  std 0.01   gap closed 0.05 / 0.10 = 0.5
    fancy         0.91 0.93 0.95   mean 0.93  std 0.02   gap closed 0.11 / 0.10 = 1.1 (> teacher)
    dml           0.83 0.85 0.87   mean 0.85  std 0.02   teacher-free (teacher tag '-'), gap 0.3
    fitnet        skipped (n/a) with a reason
    crd           seed 0 FAILED, never finished
task ``toy-err`` (errors, lower is better):
    teacher 10 12 14 (12), student-only 30 32 34 (32), kd 20 22 24 (22):
    gap closed (22 − 32) / (12 − 32) = 0.5
    a method named ``<script>|x``: 26 27 28 (27): gap 0.25
task ``toy-close`` (accuracy): teacher 0.85 0.88 0.91, student-only 0.84 0.87 0.90 — the gap (0.01)
    is inside the pooled seed std (0.03), so kd's gap closed is n/a.

Every task is of the ``classification`` kind, read with the kinds the built-in plugins declare
(``kinds()``): student-only is the baseline, kd the reference, fidelity a column.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

from kdbench.kind import Kind

TEACHER, STUDENT = "big", "small"
TASKS = {"toy": ("accuracy", True), "toy-err": ("errors", False), "toy-close": ("accuracy", True)}
VALUES: dict[tuple[str, str], list[float]] = {
    ("toy", "teacher"): [0.90, 0.92, 0.94],
    ("toy", "student-only"): [0.80, 0.82, 0.84],
    ("toy", "kd"): [0.86, 0.87, 0.88],
    ("toy", "fancy"): [0.91, 0.93, 0.95],
    ("toy", "dml"): [0.83, 0.85, 0.87],
    ("toy-err", "teacher"): [10, 12, 14],
    ("toy-err", "student-only"): [30, 32, 34],
    ("toy-err", "kd"): [20, 22, 24],
    ("toy-err", "<script>|x"): [26, 27, 28],
    ("toy-close", "teacher"): [0.85, 0.88, 0.91],
    ("toy-close", "student-only"): [0.84, 0.87, 0.90],
    ("toy-close", "kd"): [0.86, 0.87, 0.88],
}
TEACHER_FREE = {"student-only", "dml"}
SKIP_REASON = "feature method needs a white-box teacher"
ERROR = "RuntimeError: boom"
ROWS = 14
"""Table rows: toy 7 (teacher, student-only, kd, fancy, dml, fitnet n/a, crd failed), toy-err 4,
toy-close 3."""


def tags(task: str, method: str, seed: int, **extra: str) -> dict[str, str]:
    """The tags ``Combination.tags()`` and the runner give a run."""
    metric, higher = TASKS[task]
    role = "student" if method in TEACHER_FREE else "distill"
    role = "teacher" if method == "teacher" else role
    base = method.split("[")[0]
    return {
        "kdbench.task": task, "kdbench.modality": "vision", "kdbench.kind": "classification",
        "kdbench.teacher": TEACHER if role != "student" else "-",
        "kdbench.student": STUDENT if role != "teacher" else "-",
        "kdbench.method": "teacher" if role == "teacher" else base,
        "kdbench.variant": method, "kdbench.seed": str(seed), "kdbench.role": role,
        "kdbench.config_hash": f"{task}/{method}/{seed}", "kdbench.checkpoint": "final",
        "kdbench.primary_metric": metric, "kdbench.higher_is_better": str(higher).lower(),
        "kdbench.version": "0.1.0", "kdbench.commit": "abc123", **extra,
    }


def build(folder: Path, experiment: str = "synthetic") -> str:
    """Write the store under ``folder``; returns its tracking URI."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder}/m.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(experiment)

    def run(run_tags: dict[str, str], metrics: dict[str, float], status: str = "FINISHED",
            history: list[tuple[int, float]] = ()) -> None:
        run_id = client.create_run(exp, tags=run_tags).info.run_id
        items = [Metric(k, float(v), 0, 0) for k, v in metrics.items()]
        curve = f"val_{TASKS[run_tags['kdbench.task']][0]}"
        items += [Metric(curve, value, 0, step) for step, value in history]
        client.log_batch(run_id, metrics=items)
        client.set_terminated(run_id, status=status)

    # A failure that a later run of the same config superseded: history, not a current problem.
    run(tags("toy", "kd", 0, **{"kdbench.error": "RuntimeError: old"}), {}, status="FAILED")
    for (task, method), values in VALUES.items():
        metric, _ = TASKS[task]
        teacher = method == "teacher"
        for seed, value in enumerate(values):
            metrics = {f"test_{metric}": value, "params": 1e6 if teacher else 1e4,
                       "flops": 2e6 if teacher else 2e4, "latency_ms": 2.0 if teacher else 0.5}
            if method == "kd":
                metrics["test_fidelity"] = [0.90, 0.92, 0.94][seed]
            curve = [(1, value - 0.1), (2, value - 0.05), (3, value)] if task == "toy" else []
            run(tags(task, method, seed), metrics, history=curve)
    run(tags("toy", "fitnet", 0, **{"kdbench.skipped": SKIP_REASON}), {})
    run(tags("toy", "crd", 0, **{"kdbench.error": ERROR}), {}, status="FAILED")
    return uri


@cache
def kinds() -> dict[str, Kind]:
    """The kinds the built-in plugins declare, as the CLI hands them to the leaderboard."""
    from kdbench.registry import Registry

    return Registry.load().kinds.entries


@cache
def _built() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="kdbench-synthetic-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    build(folder)
    return folder / "m.db"


def copy(folder: Path) -> str:
    """A private copy of the store in ``folder`` (built once per session); returns its URI."""
    shutil.copy(_built(), folder / "m.db")
    return f"sqlite:///{folder}/m.db"
