"""Where a suite's runs execute: in this process (default), a local process pool, or Ray.

All three produce the same runs with the same metrics for a given thread count; they
differ only in how many run at once and on which machines. Tuning trials go the same way:
``TrialScheduler`` hands them to the same backends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kdbench.executors.job import Job, forwarded_environment
from kdbench.executors.scheduler import Backend, ParallelRunner, TrialScheduler, worker_threads
from kdbench.plan import Combination
from kdbench.runner import Runner
from kdbench.tuning import TrialSpec, Tuning

EXECUTORS = ("inprocess", "process", "ray")

JobMaker = Callable[[Combination, dict[str, str], TrialSpec | None], Job]


def _backend(executor: str, runner: Runner, suite: Path, plugins: list[str], max_parallel: int,
             address: str | None, storage: str | None) -> tuple[Backend, JobMaker]:
    """The workers of ``executor`` and how to describe a combination (or a trial) to them."""
    threads = worker_threads(max_parallel)
    runner.tracker.ensure_experiment()  # created once here, not raced by the workers
    if executor == "ray":
        from kdbench.executors.ray_cluster import RayCluster

        backend: Backend = RayCluster(address, threads, max_parallel)
    else:
        from kdbench.executors.process_pool import ProcessPool

        backend = ProcessPool(max_parallel)
    plugin_args = tuple(str(Path(p).resolve()) if Path(p).is_file() else p for p in plugins)
    environment = forwarded_environment()

    def make_job(combination: Combination, failed_teachers: dict[str, str], trial: TrialSpec | None = None) -> Job:
        return Job(suite=str(suite.resolve()), plugins=plugin_args, tracking_uri=runner.tracker.uri,
                   experiment=runner.tracker.experiment_name, key=combination.key, threads=threads,
                   rerun=runner.rerun, environment=environment, failed_teachers=failed_teachers,
                   storage=storage, trial=trial)

    return backend, make_job


def parallel_runner(executor: str, runner: Runner, suite: Path, plugins: list[str], max_parallel: int,
                    address: str | None = None, storage: str | None = None) -> ParallelRunner:
    """A runner that spreads combinations over ``max_parallel`` workers of ``executor``."""
    backend, make_job = _backend(executor, runner, suite, plugins, max_parallel, address, storage)
    return ParallelRunner(runner, backend, make_job, max_parallel)


def trial_scheduler(executor: str, runner: Runner, tuning: Tuning, suite: Path, plugins: list[str],
                    max_parallel: int, address: str | None = None) -> TrialScheduler:
    """Runs ``tuning``'s trials on ``max_parallel`` workers of ``executor``; ``runner`` logs to the tuning
    experiment."""
    backend, make_job = _backend(executor, runner, suite, plugins, max_parallel, address, None)
    return TrialScheduler(runner, tuning, backend, make_job, max_parallel)


__all__ = ["EXECUTORS", "ParallelRunner", "TrialScheduler", "parallel_runner", "trial_scheduler"]
