"""One combination, or one tuning trial, as a unit of work for another process or machine.

A job names its combination by config hash, not by value: tasks hold their data, so
a worker rebuilds the suite's plan from the suite file (once per worker process, then
reused) and looks the combination up. The worker then runs it exactly as the
in-process runner would — same resume check, same MLflow logging, same teacher cache —
so the executor changes where a run happens, never what it computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from kdbench.plan import Combination
from kdbench.tuning import TrialSpec, run_trial, trial_combination

FORWARDED_ENVIRONMENT = ("KDBENCH_", "MLFLOW_")
"""Prefixes of the environment variables a worker inherits from the driver (data root,
cache, plugin allow-list, tracking settings), whatever environment its host started it with."""


@dataclass(frozen=True)
class Job:
    suite: str
    """Absolute path of the suite file."""
    plugins: tuple[str, ...]
    """The driver's ``--plugin`` arguments (files as absolute paths)."""
    tracking_uri: str
    experiment: str
    """The MLflow experiment the run goes to: the suite's, or its tuning experiment for a trial."""
    key: str
    threads: int
    rerun: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    failed_dependencies: dict[str, str] = field(default_factory=dict)
    """Teacher keys that failed in this invocation, so their students fail fast with the reason."""
    storage: str | None = None
    """The tuning studies' storage for ``kdbench run --tuned``: the worker plans the tuned combinations too."""
    trial: TrialSpec | None = None
    """A tuning trial of the combination ``trial.base`` (``key`` is the trial's own)."""
    device: str = "cpu"
    """The device the worker resolves for itself (``kdbench.device.resolve``): ``cuda`` is whichever
    GPU its executor made visible to it."""


@dataclass(frozen=True)
class JobResult:
    key: str
    status: str
    """An ``Outcome`` status: FINISHED, FAILED, N/A or SKIPPED (finished by someone else meanwhile)."""
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


def forwarded_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENVIRONMENT)}


_plans: dict[tuple[Any, ...], tuple[Any, dict[str, Combination]]] = {}
"""Per worker process: (suite, plugins, tracking URI, experiment, storage, device, environment) →
(runner, combinations by key)."""


def run_job(job: Job, tags: dict[str, str] | None = None) -> JobResult:
    """Run one combination in this process; every failure comes back as a FAILED result. ``tags`` go on
    its run: what only the worker knows, such as the Ray node it landed on."""
    _enter(job)
    try:
        runner, by_key = _plan(job)
        runner.tracker.run_tags = dict(tags or {})
        if job.trial is not None:
            combination = trial_combination(by_key[job.trial.base], job.trial)
            outcome = run_trial(runner, combination, job.trial)
            return JobResult(job.key, outcome.status, outcome.error, outcome.metrics)
        combination = by_key.get(job.key)
        if combination is None:
            return JobResult(job.key, "FAILED", f"no combination {job.key} in {job.suite} (was the file edited?)")
        runner.rerun = job.rerun
        runner.failed_dependencies = dict(job.failed_dependencies)
        todo, _ = runner.pending([combination])  # marks a dead earlier attempt's RUNNING run KILLED
        if not todo:
            return JobResult(job.key, "SKIPPED")
        outcome = runner.run_one(combination)
        return JobResult(job.key, outcome.status, outcome.error, outcome.metrics)
    except Exception as error:  # e.g. the suite no longer loads in the worker
        return JobResult(job.key, "FAILED", f"{type(error).__name__}: {error}".splitlines()[0][:500])


def prepare(job: Job) -> None:
    """Build this worker's plan for ``job``'s suite before its first run arrives (imports, plugins, datasets,
    tracking client: most of a fresh worker's first seconds), while the driver is still planning. A failure
    is left for the first real job to report."""
    _enter(job)
    try:
        _plan(job)
    except Exception:  # noqa: BLE001 - the same error comes back, reported, with the first run
        pass


def _enter(job: Job) -> None:
    """The driver's environment and the job's threads, in this worker, whatever its host started it with."""
    os.environ.update(job.environment)
    os.environ["KDBENCH_THREADS"] = str(job.threads)
    torch.set_num_threads(job.threads)


def _plan(job: Job) -> tuple[Any, dict[str, Combination]]:
    from kdbench.data_root import cache_dir
    from kdbench.device import resolve
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.runner import Runner
    from kdbench.suite import load_suite
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import Tracker

    ident = (job.suite, job.plugins, job.tracking_uri, job.experiment, job.storage, job.device,
             tuple(sorted(job.environment.items())))
    if ident not in _plans:
        registry = Registry.load(list(job.plugins))
        suite = load_suite(job.suite, registry)
        combinations = expand(suite, registry, task_instances(suite, registry))
        if job.storage is not None:
            from kdbench.tuning import tuned

            combinations = tuned(suite, combinations, job.storage)
        runner = Runner(registry, Tracker(job.tracking_uri, job.experiment), TeacherCache(cache_dir()),
                        device=resolve(job.device))
        _plans.clear()  # one suite per worker at a time: don't keep datasets of earlier suites alive
        _plans[ident] = (runner, {c.key: c for c in combinations})
    return _plans[ident]
