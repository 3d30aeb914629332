"""Ray as the engine for spreading a suite over a cluster (or the local machine).

Each job is a Ray task that reserves as many CPUs as it uses threads, so Ray never
packs more torch threads onto a node than it has cores. Ray's own task retries are
off: the scheduler retries a dead worker's job once, the same way for every executor.
Workers must reach the same tracking server and teacher cache (a shared
``KDBENCH_CACHE`` folder) as the driver; see the README. Each run is tagged with the
id of the node it ran on (``kdbench.ray_node``), so where the cluster put a run, and
where a lost node's run was retried, can be read back from MLflow.
"""

from __future__ import annotations

from kdbench.errors import UserError
from kdbench.executors.job import Job, JobResult, prepare, run_job
from kdbench.executors.scheduler import Backend, WorkerDied

NODE_TAG = "kdbench.ray_node"


class RayCluster(Backend):
    def __init__(self, address: str | None, threads: int, max_parallel: int, gpus_per_run: float = 0.0) -> None:
        """``gpus_per_run``: the GPUs each task reserves (a fraction packs several runs onto one GPU);
        Ray then sets each task's ``CUDA_VISIBLE_DEVICES`` to what it was given."""
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'kdbench[ray]'") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(num_cpus=threads * max_parallel, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise UserError(f"cannot reach the Ray cluster at {address or 'local'}: "
                                f"{str(error).splitlines()[0]}") from None
        self.task = ray.remote(**task_options(threads, gpus_per_run))(run_on_node)
        self.prepare = ray.remote(**task_options(threads, gpus_per_run))(prepare)
        self.pending: dict[object, str] = {}
        self.warming: list[object] = []

    def warm(self, job: Job, workers: int) -> None:
        """Ray keeps a worker process for later tasks of the same resources, so the runs land on workers
        that hold the plan (on a cluster larger than ``workers`` slots, some may land on others)."""
        self.warming = [self.prepare.remote(job) for _ in range(workers)]

    def submit(self, job: Job) -> None:
        self.pending[self.task.remote(job)] = job.key

    def wait(self) -> list[tuple[str, JobResult | WorkerDied]]:
        ready, _ = self.ray.wait(list(self.pending), num_returns=1)
        ended: list[tuple[str, JobResult | WorkerDied]] = []
        for ref in ready:
            key = self.pending.pop(ref)
            try:
                ended.append((key, self.ray.get(ref)))
            except self.ray.exceptions.RayError as error:  # the worker process died under the task
                ended.append((key, WorkerDied(f"{type(error).__name__}")))
        return ended

    def close(self, interrupted: bool = False) -> None:
        if interrupted:
            for ref in [*self.pending, *self.warming]:
                self.ray.cancel(ref, force=True)
        self.pending, self.warming = {}, []
        if self.started_here:
            self.ray.shutdown()


def run_on_node(job: Job) -> JobResult:
    """``run_job`` as a Ray task, its run tagged with the node the task landed on."""
    import ray

    return run_job(job, {NODE_TAG: ray.get_runtime_context().get_node_id()})


def task_options(threads: int, gpus_per_run: float) -> dict[str, float | int]:
    """What each run's Ray task reserves: a CPU per thread, and its share of GPUs."""
    return {"num_cpus": threads, "num_gpus": gpus_per_run, "max_retries": 0}
