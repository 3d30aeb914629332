"""What a suite will do and about how long it will take, before anything trains: ``kdbench plan``
(and ``kdbench run --dry-run``), which writes nothing to the MLflow store and no checkpoint to the cache
(only what every command that loads the plugins writes: their declarations snapshot).

A combination's state comes from ``run_state``, the one rule ``Runner.pending`` applies as well, so
the plan says what ``run`` will do. Its wall time comes, in this order of preference, from

1. **recorded runs**: finished runs anywhere in the tracking store with the same task (and options),
   role, model, teacher(s), method, device and recipe except ``epochs``; their median wall time per
   epoch times this run's epochs (a run's evaluation is scaled with its epochs, a small overestimate
   for long recipes); runs trained for a budget of steps must match in their parameters too, unscaled;
2. **a probe**: the combination itself run once through ``Runner.run_one`` — same code path, same
   device — for one epoch of ``PROBE_BATCHES`` training batches, into a throwaway store and cache
   in a temporary folder (its teachers and start weights untrained there: a forward pass costs the
   same). The probe times a training step, each epoch's validation and the rest (building,
   test evaluation, measurement) apart, and scales the steps and validations to the real recipe's
   epochs and batches. One probe answers for every seed and grid point of its configuration.
   Plugins' lifecycle hooks see the probe runs, as they would see any run.

Totals are given for one run after another (the in-process runner) and for ``max_parallel``
workers dispatched as ``ParallelRunner`` does (a run starts when a worker is free and what it
needs has finished), taking each run to last as long in a worker as alone.
"""

from __future__ import annotations

import copy
import heapq
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from kdbench.device import device_name
from kdbench.errors import UserError
from kdbench.hashing import canonical_json
from kdbench.method import Method
from kdbench.plan import Combination
from kdbench.registry import Registry
from kdbench.runner import Progress, Runner, threads
from kdbench.task import Batch, Task
from kdbench.teacher_cache import TeacherCache
from kdbench.tracking import RunRecord, Tracker

PROBE_BATCHES = 8
"""Training batches a probe takes at least: enough to time a step past the first. What else a probe
costs is the run's own: building, a teacher's outputs over the training split, validation, the test
evaluation and the measurements (seconds on digits, about a minute per configuration on MNIST with
two busy cores)."""
PROBE_SECONDS = 2.0
"""A probe goes on past ``PROBE_BATCHES`` while its training is younger than this (up to the epoch's
end): a step of a few milliseconds, timed over a few, would say more of the machine's other work at
that moment than of the step."""


@dataclass(frozen=True)
class RunState:
    done: bool
    """Whether ``kdbench run`` skips it as finished."""
    why: str
    """Why it runs (or 'finished'), in words for the plan."""


def run_state(combination: Combination, records: list[RunRecord], cache: TeacherCache, rerun: bool) -> RunState:
    """Whether ``combination`` is finished, given the runs its key has in the store: a FINISHED run,
    unless ``rerun``, unless its weights (a teacher's, or a start others take) are gone from the
    cache, unless it was recorded n/a and can run now. Anything else runs (again)."""
    finished = [r for r in records if r.status == "FINISHED"]
    if not finished:
        ended = {r.status for r in records}
        for status, why in (("RUNNING", "left RUNNING by a killed process"), ("FAILED", "failed before"),
                            ("KILLED", "killed before")):
            if status in ended:
                return RunState(False, why)
        return RunState(False, "new")
    if rerun:
        return RunState(False, "--rerun")
    if (combination.saves_weights and combination.skip_reason is None and not combination.model_spec.pretrained
            and not cache.has(combination.key)):
        return RunState(False, "finished, but its weights are not in the cache")
    if all("kdbench.skipped" in r.tags for r in finished) and combination.skip_reason is None:
        return RunState(False, "n/a before, runnable now")
    return RunState(True, "finished")


class CacheView(TeacherCache):
    """The teacher cache as a plan sees it: asked, never written (no folder made, no orphan removed)."""

    def __init__(self, root: Path) -> None:  # TeacherCache's own makes its folder and cleans it
        self.root = root / "teachers"


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    """``None``: not estimated (``source`` says why)."""
    source: str


@dataclass(frozen=True)
class PlannedRun:
    combination: Combination
    state: RunState
    estimate: Estimate
    cached: bool
    """Whether its weights are in the cache (asked of teachers, and of runs others start from)."""

    @property
    def runs(self) -> bool:
        return not self.state.done


def plan(combinations: list[Combination], records: list[RunRecord], history: list[RunRecord],
         cache: TeacherCache, rerun: bool, device: torch.device,
         probe: Callable[[Combination], Estimate] | None) -> list[PlannedRun]:
    """Each combination's state and estimate: from ``history`` (finished runs of the whole store),
    else from ``probe`` (``None``: not estimated)."""
    by_key: dict[str, list[RunRecord]] = {}
    for record in records:
        by_key.setdefault(record.tags.get("kdbench.config_hash", ""), []).append(record)
    stepped = {c.method.name for c in combinations if _counts_steps(c)}
    recorded: dict[tuple, list[RunRecord]] = {}
    for record in history:
        recorded.setdefault(_record_class(record, stepped), []).append(record)
    probed: dict[tuple, Estimate] = {}
    planned = []
    for combination in combinations:
        state = run_state(combination, by_key.get(combination.key, []), cache, rerun)
        if state.done:
            estimate = Estimate(0.0, "finished")
        elif combination.skip_reason is not None:
            estimate = Estimate(0.0, "nothing trains")
        else:
            kind = _class(combination, device)
            estimate = _from_records(combination, recorded.get(kind, []))
            if estimate is None and kind not in probed:
                probed[kind] = _probed(combination, probe)
            estimate = estimate or probed[kind]
        cached = combination.saves_weights and cache.has(combination.key)
        planned.append(PlannedRun(combination, state, estimate, cached))
    return planned


def _probed(combination: Combination, probe: Callable[[Combination], Estimate] | None) -> Estimate:
    if probe is None:
        return Estimate(None, "no recorded run (--no-probe)")
    if _counts_steps(combination):
        return Estimate(None, "no recorded run; it trains for a budget of steps, which one epoch does not time")
    return probe(combination)


def _counts_steps(combination: Combination) -> bool:
    """Whether its method trains for a budget of optimiser steps, which an epoch's probe cannot scale to."""
    return combination.method is not None and combination.method.train_steps is not Method.train_steps


def _class(combination: Combination, device: torch.device) -> tuple:
    """What a run's duration depends on, as the runner logs it: tags, and params as strings."""
    tags = combination.tags()
    recipe = {k: str(v) for k, v in combination.recipe.model_dump().items() if k != "epochs"}
    options = {k: str(v) for k, v in combination.config["task"]["options"].items()}
    params = canonical_json(combination.params) if _counts_steps(combination) else ""
    return (tags["kdbench.role"], tags["kdbench.task"], tags["kdbench.teacher"], tags["kdbench.student"],
            tags["kdbench.method"], device_name(device), frozenset(recipe.items()), frozenset(options.items()),
            params)


def _record_class(record: RunRecord, stepped: set[str]) -> tuple:
    """``_class`` of a recorded run, from its tags and its params (the flattened config, as strings);
    ``stepped``: the methods that train for a budget of steps."""
    tags, role = record.tags, record.tags.get("kdbench.role", "")
    prefix = "model.recipe." if role == "teacher" else "student.recipe."
    recipe = {k.removeprefix(prefix): v for k, v in record.params.items()
              if k.startswith(prefix) and k != f"{prefix}epochs"}
    options = {k.removeprefix("task.options."): v for k, v in record.params.items() if k.startswith("task.options.")}
    steps = tags.get("kdbench.params", "") if tags.get("kdbench.method") in stepped else ""
    return (role, tags.get("kdbench.task"), tags.get("kdbench.teacher"), tags.get("kdbench.student"),
            tags.get("kdbench.method"), record.params.get("device"), frozenset(recipe.items()),
            frozenset(options.items()), steps)


def _from_records(combination: Combination, records: list[RunRecord]) -> Estimate | None:
    """The median recorded wall time per epoch, times this run's epochs (unscaled for a budget of steps)."""
    if not records:
        return None
    steps = _counts_steps(combination)
    prefix = "model.recipe." if combination.role == "teacher" else "student.recipe."
    per_epoch = [r.metrics["wall_time_s"] / (1 if steps else int(r.params[f"{prefix}epochs"])) for r in records]
    seconds = statistics.median(per_epoch) * (1 if steps else combination.recipe.epochs)
    return Estimate(seconds, f"recorded ({len(records)} run{'s' * (len(records) > 1)})")


def store_runs(uri: str, experiment: str) -> tuple[list[RunRecord], list[RunRecord]]:
    """The suite's runs and every finished run with a recorded wall time in the store at ``uri``, read
    without writing: an embedded store that does not exist yet is not created."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return [], []
    tracker = Tracker(uri, experiment)
    names = [e.name for e in tracker.client.search_experiments()]
    history = [r for name in names for r in (tracker if name == experiment else Tracker(uri, name)).runs()
               if r.status == "FINISHED" and "wall_time_s" in r.metrics]
    return tracker.runs(), history


class Prober:
    """Probes combinations into a throwaway store and cache under a temporary folder, removed on exit."""

    def __init__(self, registry: Registry, device: torch.device, note: Callable[[str], None]) -> None:
        self._registry = registry
        self._device = device
        self._note = note
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._runner: Runner | None = None

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()

    def _probe_runner(self) -> Runner:
        """The throwaway runner, made on the first probe: its store's artifacts stay in the folder too."""
        if self._runner is None:
            self._folder = tempfile.TemporaryDirectory(prefix="kdbench-probe-")
            folder = Path(self._folder.name)
            tracker = Tracker(f"sqlite:///{folder / 'probe.db'}", "probe")
            tracker.client.create_experiment("probe", artifact_location=(folder / "artifacts").as_uri())
            # rerun: a teacher probe trains, whatever weights a student's probe left for it in the cache
            self._runner = Runner(self._registry, tracker, TeacherCache(folder), rerun=True, device=self._device)
        return self._runner

    def __call__(self, combination: Combination) -> Estimate:
        runner = self._probe_runner()
        self._note(f"probing {combination.label}: one epoch of {PROBE_BATCHES}+ batches")
        for needed in combination.dependencies:
            if not needed.model_spec.pretrained and not runner.cache.has(needed.key):
                torch.manual_seed(needed.seed)
                runner.cache.save(needed.key, needed.model_spec.build(needed.task))
        clock = _Clock()
        runner.progress = clock
        torch.set_num_threads(threads())
        started = time.perf_counter()
        probe = replace(combination, task=_sliced(combination.task),
                        recipe=combination.recipe.updated({"epochs": 1}))
        try:
            outcome = runner.run_one(probe)
        except UserError as error:
            return Estimate(None, f"probe failed: {error}")
        wall = time.perf_counter() - started
        if outcome.status == "N/A":
            return Estimate(0.0, f"n/a when built: {outcome.error}")
        if outcome.status != "FINISHED":
            return Estimate(None, f"probe {outcome.status.lower()}: {outcome.error}")
        batches = sum(1 for _ in combination.task.batches("train", combination.recipe, torch.Generator()))
        return Estimate(clock.scaled(wall, combination.recipe.epochs, batches), "probe")


def _sliced(task: Task) -> Task:
    """``task`` whose training epochs stop after ``PROBE_BATCHES`` batches, or later while they are younger
    than ``PROBE_SECONDS``; everything else as it is (a teacher's outputs are still computed over the
    whole training split, as the run will).

    The slicing is a subclass, not a patched attribute: a method that makes its own copy of the task
    with other splits (specialists relabels them) must get that copy's batches, sliced, not the
    original's."""

    class Sliced(type(task)):  # type: ignore[misc, valid-type]
        def batches(self, split: str, recipe: object, generator: torch.Generator | None) -> Iterator[Batch]:
            found = super().batches(split, recipe, generator)
            return _while_probing(found) if split == "train" and recipe is not None else found

    Sliced.__name__ = Sliced.__qualname__ = type(task).__name__
    sliced = copy.copy(task)
    sliced.__class__ = Sliced
    return sliced


def _while_probing(batches: Iterator[Batch]) -> Iterator[Batch]:
    started = time.perf_counter()
    for count, batch in enumerate(batches):
        if count >= PROBE_BATCHES and time.perf_counter() - started >= PROBE_SECONDS:
            return
        yield batch


class _Clock(Progress):
    """When a probe's training started, and when each of its batches and epochs ended."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.events: list[tuple[str, float]] = []

    def start_run(self, combination: Combination, epochs: int) -> None:
        self.started = time.perf_counter()

    def batch(self) -> None:
        self.events.append(("batch", time.perf_counter()))

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.events.append(("epoch", time.perf_counter()))

    def scaled(self, wall: float, epochs: int, batches: int) -> float:
        """The run's seconds at ``epochs`` epochs of ``batches`` batches, from a probe that took ``wall``.

        A step is the mean time between consecutive batches of an epoch (a mean: on a busy machine
        the steps the process was made to wait for count too); each validation the time from an
        epoch's last batch to its end; what is left of training (the first step, a teacher's outputs
        computed once, a method's setup) and the rest of the run (building, test evaluation,
        measurement) are counted once. A method that trains in stages (generations, an assistant)
        had one epoch per stage, and each stage is scaled alike."""
        stages = [t for kind, t in self.events if kind == "epoch"]
        if self.started is None or not stages:
            return wall  # nothing trained (a pretrained teacher): the probe was the whole run
        steps, validations, previous = [], [], None
        for kind, at in self.events:
            if kind == "batch" and previous is not None and previous[0] == "batch":
                steps.append(at - previous[1])
            elif kind == "epoch" and previous is not None:
                validations.append(at - previous[1])
            previous = (kind, at)
        step = statistics.fmean(steps) if steps else 0.0
        validation = sum(validations) / len(stages)
        training = stages[-1] - self.started
        taken = sum(kind == "batch" for kind, _ in self.events)
        once = max(0.0, training - taken * step - validation * len(stages))
        return (wall - training) + once + len(stages) * epochs * (batches * step + validation)


def makespan(planned: list[PlannedRun], workers: int) -> float:
    """Seconds until the last run ends with ``workers`` runs at once, dispatched in plan order as soon as a
    worker is free and the runs it needs (teachers, its start) have ended; one worker: the sum."""
    todo = [p for p in planned if p.runs]
    keys = {p.combination.key for p in todo}
    waiting = [(p.combination.key, {d.key for d in p.combination.dependencies} & keys, p.estimate.seconds or 0.0)
               for p in todo]
    running: list[tuple[float, str]] = []
    ended: set[str] = set()
    now = 0.0
    while waiting or running:
        for item in [w for w in waiting if w[1] <= ended]:
            if len(running) >= workers:
                break
            waiting.remove(item)
            heapq.heappush(running, (now + item[2], item[0]))
        if not running:
            break  # what is left waits on runs that are not in the plan: nothing more starts
        now, key = heapq.heappop(running)
        ended.add(key)
    return now
