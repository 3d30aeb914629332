"""Running a suite's combinations in parallel on a pool of workers.

The driver owns the order and the bookkeeping; workers (local processes or Ray tasks)
only run jobs. A combination is dispatched once every teacher it learns from has
finished in this invocation or an earlier one, so each teacher is trained by exactly
one job and its students wait for the cache. A worker that dies (killed, out of
memory) gets its combination retried once on a fresh worker; a second death records
the run FAILED. Ctrl-C stops the workers and marks their runs KILLED.

Tuning trials use the same backends through ``TrialScheduler``: the driver alone asks and tells
the studies, so however many trials run at once no study exceeds its budget; a trial whose
worker died is failed, not counted, and replaced by a new one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable

from kdbench.executors.job import Job, JobResult
from kdbench.plan import Combination
from kdbench.runner import Outcome, Runner
from kdbench.tuning import Study, TrialSpec, Tuning, trial_combination

ATTEMPTS = 2
"""A combination's worker may die once; the second death is recorded as a failure."""


class WorkerDied(Exception):
    """The process running a job ended without answering (a signal, OOM kill, hardware loss)."""


class Backend(ABC):
    """Where jobs run. ``wait`` blocks until at least one submitted job ends."""

    @abstractmethod
    def warm(self, job: Job, workers: int) -> None:
        """Start ``workers`` workers now and have each ``prepare`` for ``job``'s suite, without waiting: a job
        submitted to a worker still preparing runs once it is ready, on the plan it built."""

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def wait(self) -> list[tuple[str, JobResult | WorkerDied]]:
        """Ended jobs as (key, result), or (key, ``WorkerDied``) when their worker died."""

    @abstractmethod
    def close(self, interrupted: bool = False) -> None:
        """Release the workers; ``interrupted`` kills those still busy."""


def worker_threads(max_parallel: int) -> int:
    """Threads per worker: ``KDBENCH_THREADS`` if set, else the cores shared out (2 cores, 2 workers: 1 each)."""
    if "KDBENCH_THREADS" in os.environ:
        return int(os.environ["KDBENCH_THREADS"])
    return max(1, (os.cpu_count() or 1) // max_parallel)


class ParallelRunner:
    """Dispatches combinations to a backend in dependency order, with one retry per dead worker."""

    def __init__(self, runner: Runner, backend: Backend, make_job: Callable[[Combination, dict[str, str]], Job],
                 max_parallel: int) -> None:
        self.runner = runner
        self.backend = backend
        self.make_job = make_job
        self.max_parallel = max_parallel
        self.outcomes: list[Outcome] = []

    def run(self, combinations: list[Combination]) -> list[Outcome]:
        waiting = list(combinations)
        by_key = {c.key: c for c in combinations}
        unfinished = set(by_key)  # teachers outside this list finished in an earlier invocation
        attempts: dict[str, int] = {}
        in_flight: set[str] = set()
        failed_dependencies: dict[str, str] = {}
        self.outcomes = []
        try:
            while waiting or in_flight:
                for combination in [c for c in waiting if not {d.key for d in c.dependencies} & unfinished]:
                    if len(in_flight) >= self.max_parallel:
                        break
                    waiting.remove(combination)
                    self._submit(combination, attempts, in_flight, failed_dependencies)
                for key, result in self.backend.wait():
                    in_flight.discard(key)
                    combination = by_key[key]
                    if isinstance(result, WorkerDied):
                        if attempts[key] < ATTEMPTS:
                            self.runner.progress.note(f"worker died running {combination.label} ({result}); retrying")
                            self._submit(combination, attempts, in_flight, failed_dependencies)
                            continue
                        reason = f"worker died {ATTEMPTS} times ({result})"
                        self.runner.record_failure(combination, reason)
                        result = JobResult(key, "FAILED", reason)
                    unfinished.discard(key)
                    if combination.saves_weights and result.status not in ("FINISHED", "SKIPPED"):
                        failed_dependencies[key] = result.error or result.status
                    self._finish(combination, result)
        except KeyboardInterrupt:
            self.backend.close(interrupted=True)
            self.runner.pending([by_key[key] for key in in_flight])  # their RUNNING runs become KILLED
            raise
        self.backend.close()
        return self.outcomes

    def _submit(self, combination: Combination, attempts: dict[str, int], in_flight: set[str],
                failed_dependencies: dict[str, str]) -> None:
        attempts[combination.key] = attempts.get(combination.key, 0) + 1
        in_flight.add(combination.key)
        self.backend.submit(self.make_job(combination, dict(failed_dependencies)))

    def _finish(self, combination: Combination, result: JobResult) -> None:
        outcome = Outcome(combination, result.status, result.error, dict(result.metrics))
        self.outcomes.append(outcome)
        self.runner.progress.end_run(outcome)


class TrialScheduler:
    """Keeps ``max_parallel`` trials of a ``Tuning``'s studies in flight on a backend until every study
    has its budget; a study whose trials killed their worker ``ATTEMPTS`` times asks no more."""

    def __init__(self, runner: Runner, tuning: Tuning, backend: Backend,
                 make_job: Callable[[Combination, dict[str, str], TrialSpec | None], Job], max_parallel: int) -> None:
        self.runner = runner
        self.tuning = tuning
        self.backend = backend
        self.make_job = make_job
        self.max_parallel = max_parallel
        self.given_up: dict[str, str] = {}
        """Study label → why it stopped short of its budget."""

    def run(self) -> None:
        in_flight: dict[str, tuple[Study, TrialSpec, Combination]] = {}
        deaths: dict[str, int] = {}
        try:
            while True:
                while len(in_flight) < self.max_parallel and self._submit_next(in_flight, deaths):
                    pass
                if not in_flight:
                    break
                for key, result in self.backend.wait():
                    study, spec, combination = in_flight.pop(key)
                    if isinstance(result, WorkerDied):
                        self.tuning.tell(spec, None)
                        self.runner.pending([combination])  # its RUNNING run becomes KILLED
                        deaths[study.name] = deaths.get(study.name, 0) + 1
                        self.runner.progress.note(f"worker died running {combination.label} ({result})")
                        if deaths[study.name] >= ATTEMPTS:
                            self.given_up[study.label] = f"trials killed their worker {ATTEMPTS} times ({result})"
                        continue
                    outcome = Outcome(combination, result.status, result.error, dict(result.metrics))
                    self.tuning.tell(spec, outcome)
                    self.runner.progress.end_run(outcome)
        except KeyboardInterrupt:
            self.backend.close(interrupted=True)
            self.runner.pending([c for _, _, c in in_flight.values()])  # their RUNNING runs become KILLED
            raise
        self.backend.close()

    def _submit_next(self, in_flight: dict[str, tuple[Study, TrialSpec, Combination]],
                     deaths: dict[str, int]) -> bool:
        """Submit one trial of the study with the fewest in flight (studies take turns, so each sees
        its earlier trials' results before drawing the next); ``False`` once every study is full."""
        running = [study.name for study, _, _ in in_flight.values()]
        for study in sorted((s for s in self.tuning.studies if deaths.get(s.name, 0) < ATTEMPTS),
                            key=lambda s: running.count(s.name)):
            spec = self.tuning.ask(study)
            if spec is not None:
                combination = trial_combination(study.combination, spec)
                in_flight[combination.key] = (study, spec, combination)
                self.backend.submit(self.make_job(combination, {}, spec))
                return True
        return False
