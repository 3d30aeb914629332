"""A kdbench plugin that kills its own process at a chosen point, for the crash-safety tests.

Loaded with ``--plugin tests/fault_plugin.py``; ``KDBENCH_TEST_FAULT`` picks the point
(the variable is forwarded to executor workers like every ``KDBENCH_*`` one):

- ``teacher-epoch`` / ``student-epoch``: SIGKILL after the first epoch of a teacher / distillation run;
- ``between-runs``: SIGKILL right after the first student run ended FINISHED;
- ``metrics-logging``: SIGKILL half-way through logging a run's final metrics;
- ``cache-write``: SIGKILL after a teacher checkpoint's temporary file is written, before its rename;
- ``die-once:METHOD`` / ``die-always:METHOD``: SIGKILL when a METHOD run starts (once, using a marker
  file under ``KDBENCH_CACHE``, or every time) — a worker dying under its job; several of these
  separated by commas.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from kdbench import Run, hookimpl

FAULT = os.environ.get("KDBENCH_TEST_FAULT", "")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def kdbench_epoch_end(run: Run, epoch: int) -> None:
    role = run.role
    if epoch == 1 and (FAULT, role) in {("teacher-epoch", "teacher"), ("student-epoch", "distill")}:
        die()


@hookimpl
def kdbench_run_end(run: Run, status: str) -> None:
    if FAULT == "between-runs" and run.role != "teacher" and status == "FINISHED":
        die()


@hookimpl
def kdbench_run_start(run: Run) -> None:
    for fault in FAULT.split(","):
        mode, _, method = fault.partition(":")
        if mode not in ("die-once", "die-always") or run.method is None or run.method.name != method:
            continue
        marker = Path(os.environ["KDBENCH_CACHE"]) / f"died-{run.seed}-{method}"
        if mode == "die-always" or not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("died here once\n")
            die()


def _patch_tracker_logging() -> None:
    from kdbench.tracking import Tracker

    original = Tracker.log_metrics

    def log_half_then_die(self: Tracker, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        if "wall_time_s" not in metrics:  # per-epoch curves pass; the final metrics are cut
            return original(self, run_id, metrics, step)
        items = sorted(metrics.items())
        original(self, run_id, dict(items[: len(items) // 2]), step)
        die()

    Tracker.log_metrics = log_half_then_die


def _patch_cache_rename() -> None:
    real_replace = os.replace

    def die_before_renaming_a_teacher(source: str, target: str, **kwargs: Any) -> None:
        if Path(target).parent.name == "teachers":
            die()
        real_replace(source, target, **kwargs)

    os.replace = die_before_renaming_a_teacher


if FAULT == "metrics-logging":
    _patch_tracker_logging()
elif FAULT == "cache-write":
    _patch_cache_rename()
