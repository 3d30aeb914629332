"""Where a suite's runs execute: in this process (default), a local process pool, or Ray.

All three produce the same runs with the same metrics for a given thread count; they
differ only in how many run at once and on which machines.
"""

from __future__ import annotations

from pathlib import Path

from kdbench.executors.job import Job, forwarded_environment
from kdbench.executors.scheduler import ParallelRunner, worker_threads
from kdbench.plan import Combination
from kdbench.runner import Runner

EXECUTORS = ("inprocess", "process", "ray")


def parallel_runner(executor: str, runner: Runner, suite: Path, plugins: list[str], max_parallel: int,
                    address: str | None = None, storage: str | None = None) -> ParallelRunner:
    """A runner that spreads combinations over ``max_parallel`` workers of ``executor``."""
    threads = worker_threads(max_parallel)
    runner.tracker.ensure_experiment()  # created once here, not raced by the workers
    if executor == "ray":
        from kdbench.executors.ray_cluster import RayCluster

        backend = RayCluster(address, threads, max_parallel)
    else:
        from kdbench.executors.process_pool import ProcessPool

        backend = ProcessPool(max_parallel)
    plugin_args = tuple(str(Path(p).resolve()) if Path(p).is_file() else p for p in plugins)
    environment = forwarded_environment()

    def make_job(combination: Combination, failed_teachers: dict[str, str]) -> Job:
        return Job(suite=str(suite.resolve()), plugins=plugin_args, tracking_uri=runner.tracker.uri,
                   key=combination.key, threads=threads, rerun=runner.rerun, environment=environment,
                   failed_teachers=failed_teachers, storage=storage)

    return ParallelRunner(runner, backend, make_job, max_parallel)


__all__ = ["EXECUTORS", "ParallelRunner", "parallel_runner"]
