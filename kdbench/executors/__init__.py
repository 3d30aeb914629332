"""Where a suite's runs execute: in this process (default), a local process pool, or Ray.

All three produce the same runs with the same metrics for a given thread count; they
differ only in how many run at once and on which machines. Tuning trials go the same way:
``TrialScheduler`` hands them to the same backends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kdbench.device import resolve
from kdbench.errors import UserError
from kdbench.executors.job import Job, forwarded_environment
from kdbench.executors.scheduler import Backend, ParallelRunner, TrialScheduler, worker_threads
from kdbench.plan import Combination
from kdbench.runner import Runner
from kdbench.tuning import TrialSpec, Tuning

EXECUTORS = ("inprocess", "process", "ray")

JobMaker = Callable[[Combination | None, dict[str, str], TrialSpec | None], Job]
"""A combination (``None``: the warming job, which names none), the teachers failed so far, a trial."""


@dataclass(frozen=True)
class Placement:
    """Where an executor's runs compute: the device each worker resolves, and (Ray) the GPUs each
    run reserves or (process pool) the GPUs its workers are spread over."""

    device: str = "cpu"
    gpus_per_run: float = 0.0
    gpus: tuple[str, ...] = ()

    @classmethod
    def of(cls, executor: str, device: str, gpus_per_run: float | None) -> Placement:
        """The placement ``--device`` and ``--gpus-per-run`` ask for; a local device is checked here,
        a cluster's GPUs by the workers that have them (the driver may have none)."""
        if gpus_per_run is not None and gpus_per_run < 0:
            raise UserError(f"--gpus-per-run must not be negative, got {gpus_per_run}")
        if gpus_per_run and executor != "ray":
            raise UserError("--gpus-per-run is for --executor ray; the process pool gives each worker one GPU")
        if executor == "ray" and device != "cpu":
            if device != "auto" or gpus_per_run:
                return cls("cuda", 1.0 if gpus_per_run is None else gpus_per_run)
            return cls("cpu")  # a run must reserve the GPU it uses: on Ray, auto means GPUs only when asked for
        if gpus_per_run:
            raise UserError("--gpus-per-run needs --device cuda (or auto)")
        resolved = resolve(device)
        if resolved.type != "cuda":
            return cls("cpu")
        if resolved.index is not None:
            return cls("cuda", gpus=(str(resolved.index),))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [g for g in visible.split(",") if g] if visible else [str(i) for i in range(torch.cuda.device_count())]
        return cls("cuda", gpus=tuple(ids))


@dataclass(frozen=True)
class Workers:
    """A started backend, warming, and how to describe a combination (or a trial) to it."""

    backend: Backend
    make_job: JobMaker
    max_parallel: int

    def close(self) -> None:
        """Release the workers (again, harmlessly, after a runner has)."""
        self.backend.close()


def start_workers(executor: str, suite: Path, plugins: list[str], max_parallel: int, tracking_uri: str,
                  experiment: str, *, address: str | None = None, storage: str | None = None,
                  placement: Placement = Placement(), rerun: bool = False) -> Workers:
    """``max_parallel`` workers of ``executor`` for the runs of ``suite`` logged to ``experiment`` at
    ``tracking_uri``, each already preparing its plan (``Backend.warm``) when this returns.

    Start them before the driver loads its plugins and plans: a fresh worker spends its first seconds
    on the same imports, plugins and datasets the driver is then busy with, and those seconds come
    before every suite's first run (on this 2-core machine the larger part of a short Ray
    invocation's fixed cost; ``bench_ray_speedup`` prints it)."""
    threads = worker_threads(max_parallel)
    if executor == "ray":
        from kdbench.executors.ray_cluster import RayCluster

        backend: Backend = RayCluster(address, threads, max_parallel, placement.gpus_per_run)
    else:
        from kdbench.executors.process_pool import ProcessPool

        backend = ProcessPool(max_parallel, list(placement.gpus))
    plugin_args = tuple(str(Path(p).resolve()) if Path(p).is_file() else p for p in plugins)
    environment = forwarded_environment()

    def make_job(combination: Combination | None, failed_dependencies: dict[str, str],
                 trial: TrialSpec | None = None) -> Job:
        return Job(suite=str(suite.resolve()), plugins=plugin_args, tracking_uri=tracking_uri, experiment=experiment,
                   key="" if combination is None else combination.key, threads=threads, rerun=rerun,
                   environment=environment, failed_dependencies=failed_dependencies, storage=storage, trial=trial,
                   device=placement.device)

    backend.warm(make_job(None, {}), max_parallel)
    return Workers(backend, make_job, max_parallel)


def parallel_runner(runner: Runner, workers: Workers) -> ParallelRunner:
    """A runner that spreads combinations over ``workers`` (started for ``runner``'s experiment)."""
    runner.tracker.ensure_experiment()  # created once here, not raced by the workers' runs
    return ParallelRunner(runner, workers.backend, workers.make_job, workers.max_parallel)


def trial_scheduler(runner: Runner, tuning: Tuning, workers: Workers) -> TrialScheduler:
    """Runs ``tuning``'s trials on ``workers`` (started for the tuning experiment ``runner`` logs to)."""
    runner.tracker.ensure_experiment()
    return TrialScheduler(runner, tuning, workers.backend, workers.make_job, workers.max_parallel)


__all__ = ["EXECUTORS", "ParallelRunner", "Placement", "TrialScheduler", "Workers", "parallel_runner", "start_workers",
           "trial_scheduler"]
