"""A local pool of worker processes, for one machine without Ray.

Each worker is a spawned process (not forked: the driver's torch and OpenMP state do
not survive a fork) that keeps its plan between jobs, so datasets load once per
worker. Every worker has its own pipe, so when one dies the driver knows exactly
which job it was running — unlike ``concurrent.futures``, whose pool breaks as a
whole and cannot say whose job killed it.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from kdbench.executors.job import Job, JobResult, prepare, run_job
from kdbench.executors.scheduler import Backend, WorkerDied


class _Warm:
    """Sent to a new worker: ``prepare`` for ``job``'s suite, and answer nothing."""

    def __init__(self, job: Job) -> None:
        self.job = job


def _serve(connection: Connection) -> None:
    """A worker's life: prepare when asked, run jobs until told to stop (``None``)."""
    while True:
        message = connection.recv()
        if message is None:
            return
        if isinstance(message, _Warm):
            prepare(message.job)
        else:
            connection.send(run_job(message))


class _Worker:
    def __init__(self, context: multiprocessing.context.SpawnContext, gpu: str | None) -> None:
        """``gpu``: the one CUDA device this worker may see (``CUDA_VISIBLE_DEVICES``), or ``None``."""
        self.connection, child = context.Pipe()
        self.process: BaseProcess = context.Process(target=_serve, args=(child,), daemon=True)
        self.gpu = gpu
        before = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpu is not None:  # a spawned process starts with the parent's environment as it is now
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        try:
            self.process.start()
        finally:
            if gpu is not None:
                if before is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = before
        child.close()
        self.key: str | None = None


class ProcessPool(Backend):
    def __init__(self, workers: int, gpus: list[str] | None = None) -> None:
        """``gpus``: the CUDA devices to spread the workers over, one per worker, round-robin (each
        worker sees only its own, as ``cuda``); ``None`` for CPU runs."""
        self.context = multiprocessing.get_context("spawn")
        self.size = workers
        self.gpus = gpus or []
        self.idle: list[_Worker] = []
        self.busy: list[_Worker] = []

    def _next_gpu(self) -> str | None:
        """The device fewest live workers hold (a replacement for a dead worker takes its device)."""
        if not self.gpus:
            return None
        held = [w.gpu for w in self.idle + self.busy if w.process.is_alive()]
        return min(self.gpus, key=lambda gpu: (held.count(gpu), self.gpus.index(gpu)))

    def warm(self, job: Job, workers: int) -> None:
        for _ in range(min(workers, self.size) - len(self.idle) - len(self.busy)):
            worker = _Worker(self.context, self._next_gpu())
            worker.connection.send(_Warm(job))
            self.idle.append(worker)

    def submit(self, job: Job) -> None:
        while self.idle and not self.idle[-1].process.is_alive():  # died warming, or idle
            self.idle.pop().process.join()
        worker = self.idle.pop() if self.idle else _Worker(self.context, self._next_gpu())
        worker.key = job.key
        worker.connection.send(job)
        self.busy.append(worker)

    def wait(self) -> list[tuple[str, JobResult | WorkerDied]]:
        ready = set(wait([w.connection for w in self.busy] + [w.process.sentinel for w in self.busy]))
        ended: list[tuple[str, JobResult | WorkerDied]] = []
        for worker in list(self.busy):
            if worker.connection not in ready and worker.process.sentinel not in ready:
                continue
            self.busy.remove(worker)
            try:
                result: JobResult | WorkerDied = worker.connection.recv()
                self.idle.append(worker)
            except (EOFError, OSError):
                worker.process.join()
                result = WorkerDied(f"exit code {worker.process.exitcode}")
            ended.append((worker.key, result))
        return ended

    def close(self, interrupted: bool = False) -> None:
        for worker in [*(self.busy if interrupted else []), *(w for w in self.idle if w.key is None)]:
            worker.process.kill()  # a worker that never ran a job may still be preparing: nothing of it to keep
        for worker in self.idle:
            try:
                worker.connection.send(None)
            except OSError:
                pass
        for worker in self.idle + self.busy:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
        self.idle, self.busy = [], []
