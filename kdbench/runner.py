"""Running a suite: resume, teachers trained once, failures recorded, the suite goes on.

Each combination is one MLflow run keyed by its config hash. A key with a FINISHED
run is skipped (unless ``rerun``); FAILED and interrupted ones run again; a stale
RUNNING run left by a killed process is marked KILLED; a finished teacher whose
checkpoint is no longer in the cache is run again, so a teacher is only ever trained
by its own run; so is a student run that others start from (``Combination.keeps_weights``).
A pretrained teacher (``ModelSpec.pretrained``) is never trained: its run evaluates it, and
its students build it again. After a rerun finishes, the older FINISHED run of the same key is
deleted, so one key never has two.

A run goes: load its teachers → build its model and training context → train →
evaluate → measure; each is one function below, and ``_record`` is the one place an
outcome is written. A teacher found in the cache (trained by an earlier suite, or by its own
run killed after the save) is evaluated, not trained, and its run logs the curves the
checkpoint kept. No space left under the artifact root (or the cache) is a ``DiskFullError``
naming the folder: the run is recorded FAILED and the suite stops, to resume once there is room.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from kdbench.data_free import without_training_inputs
from kdbench.device import determinism, device_name
from kdbench.errors import DiskFullError, IncompatibleCombination, Stopped, UserError, out_of_space
from kdbench.hashing import canonical_json
from kdbench.method import Method
from kdbench.model_stats import deployment_latency, device_latency, measure, on_cpu
from kdbench.plan import Combination
from kdbench.recipe import Recipe
from kdbench.registry import Registry
from kdbench.run import Run
from kdbench.teacher import Teacher
from kdbench.teacher_cache import TeacherCache
from kdbench.tracking import RunRecord, Tracker
from kdbench.training import TrainContext, train
from kdbench.transform import StudentTransform

TRACEBACK_ARTIFACT = "traceback.txt"
"""The artifact holding a failed run's traceback (the summary names it)."""
PLAIN_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
"""A task's pictures and samples become artifact names, and published file names and headings: no
folders, no markup."""


@dataclass
class Outcome:
    combination: Combination
    status: str
    """'FINISHED', 'FAILED', 'KILLED', 'SKIPPED' (already finished), 'N/A' (incompatible) or 'PRUNED'
    (stopped early by its watcher)."""
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


class Progress:
    """What the runner reports while it works; the CLI draws it with rich."""

    def start_run(self, combination: Combination, epochs: int) -> None: ...
    def epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...
    def batch(self) -> None: ...
    def end_run(self, outcome: Outcome) -> None: ...
    def note(self, text: str) -> None: ...


def threads() -> int:
    """Threads for the in-process executor: all cores, unless ``KDBENCH_THREADS`` says otherwise."""
    return int(os.environ.get("KDBENCH_THREADS", os.cpu_count() or 1))


class Runner:
    def __init__(self, registry: Registry, tracker: Tracker, cache: TeacherCache,
                 progress: Progress | None = None, rerun: bool = False,
                 device: torch.device | None = None) -> None:
        """``device``: where models train and evaluate (``kdbench.device.resolve``); the CPU by default."""
        self.device = device or torch.device("cpu")
        self.registry = registry
        self.tracker = tracker
        self.cache = cache
        self.progress = progress or Progress()
        self.rerun = rerun
        self.hook = registry.manager.hook
        self.failed_dependencies: dict[str, str] = {}
        self._previous: dict[str, list[RunRecord]] = {}
        self._tables: dict[str, torch.Tensor] = {}
        """Teachers' cached outputs by teacher key: only the current run's teachers are kept."""
        self.outcomes: list[Outcome] = []

    def pending(self, combinations: list[Combination]) -> tuple[list[Combination], list[Combination]]:
        """Split into (to run, already finished) by ``estimate.run_state``, the rule ``kdbench plan``
        shows; mark stale RUNNING runs KILLED."""
        from kdbench.estimate import run_state  # the plan's module builds on this one

        by_key: dict[str, list[RunRecord]] = {}
        for record in self.tracker.runs():
            by_key.setdefault(record.tags.get("kdbench.config_hash", ""), []).append(record)
        todo, done = [], []
        for combination in combinations:
            records = by_key.get(combination.key, [])
            for record in records:
                if record.status == "RUNNING":
                    self.tracker.end(record.run_id, "KILLED")
            (done if run_state(combination, records, self.cache, self.rerun).done else todo).append(combination)
        self._previous = by_key
        return todo, done

    def run(self, combinations: list[Combination]) -> list[Outcome]:
        """Run each combination in turn; ``self.outcomes`` holds those done if interrupted."""
        torch.set_num_threads(threads())
        self.outcomes = []
        for combination in combinations:
            outcome = self.run_one(combination)
            self.outcomes.append(outcome)
            self.progress.end_run(outcome)
        return self.outcomes

    def run_one(self, combination: Combination, tags: dict[str, str] | None = None,
                watch: Callable[[int, dict[str, float]], None] | None = None) -> Outcome:
        """Run one combination as one MLflow run (``tags`` added to its own: a tuning trial's parent).

        ``watch`` sees each epoch's metrics once they are logged, and may stop the run by raising
        ``Stopped`` (a pruner does): its outcome is then 'PRUNED'.
        """
        if combination.skip_reason is not None:
            run = self._start(combination, {"kdbench.skipped": combination.skip_reason, **(tags or {})})
            return self._record(combination, run, "N/A", combination.skip_reason, hooks=False)
        run = self._start(combination, tags or {})
        started = time.perf_counter()
        try:
            self.hook.kdbench_run_start(run=run)
            metrics = self._execute(combination, run, watch)
        except Stopped as stop:
            return self._record(combination, run, "PRUNED", str(stop))
        except KeyboardInterrupt:
            self._record(combination, run, "KILLED", "interrupted (Ctrl-C)")
            raise
        except IncompatibleCombination as reason:  # known only once models are built (a missing feature)
            return self._record(combination, run, "N/A", str(reason))
        except UserError as error:  # the user must act (a corrupt checkpoint): record it, then stop the suite
            self._record(combination, run, "FAILED", str(error)[:500])
            raise
        except Exception as error:  # recorded, and the suite goes on
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            try:
                with self._artifacts(run.run_id):
                    self.tracker.log_text(run.run_id, traceback.format_exc(), TRACEBACK_ARTIFACT)
            finally:  # recorded even when the traceback finds no room (a DiskFullError, which stops the suite)
                outcome = self._record(combination, run, "FAILED", reason)
            return outcome
        metrics["wall_time_s"] = time.perf_counter() - started
        return self._record(combination, run, "FINISHED", metrics=metrics)

    def _record(self, combination: Combination, run: Run, status: str, reason: str = "",
                metrics: dict[str, float] | None = None, hooks: bool = True) -> Outcome:
        """Write a run's outcome to MLflow and the hooks; the one place a run ends.

        A finished or n/a run replaces the older finished runs of its key; a failed teacher (or
        run others start from) is remembered, so the runs that need it fail at once with its reason.
        """
        metrics = metrics or {}
        if status == "FINISHED":
            self.tracker.log_metrics(run.run_id, metrics)
        elif status == "N/A":
            self.tracker.set_tags(run.run_id, {"kdbench.skipped": reason})
        elif status == "PRUNED":
            self.tracker.set_tags(run.run_id, {"kdbench.pruned": reason})
        else:
            self.tracker.set_tags(run.run_id, {"kdbench.error": reason})
        self.tracker.end(run.run_id, "FINISHED" if status in ("N/A", "PRUNED") else status)
        if hooks:
            self.hook.kdbench_run_end(run=run, status=status, metrics=metrics)
        if status in ("FINISHED", "N/A"):
            for record in self._previous.get(run.key, []):
                if record.status == "FINISHED" and record.run_id != run.run_id:
                    self.tracker.delete(record.run_id)
        elif status == "FAILED" and combination.saves_weights:
            self.failed_dependencies[run.key] = reason
        return Outcome(combination, status, reason if status != "FINISHED" else "", metrics)

    def record_failure(self, combination: Combination, reason: str) -> None:
        """Record a run FAILED that died with its process: its RUNNING run if it got that far, else a new one."""
        running = [r.run_id for r in self.tracker.runs()
                   if r.status == "RUNNING" and r.tags.get("kdbench.config_hash") == combination.key]
        for run_id in running or [self._start(combination, {}).run_id]:
            self.tracker.set_tags(run_id, {"kdbench.error": reason})
            self.tracker.end(run_id, "FAILED")

    def _start(self, combination: Combination, extra_tags: dict[str, str]) -> Run:
        from kdbench.provenance import git_commit, kdbench_version

        tags = {**combination.tags(), **extra_tags, "kdbench.version": kdbench_version(),
                "kdbench.commit": git_commit(), "kdbench.params": canonical_json(combination.params),
                "kdbench.device": device_name(self.device)}
        # where a run computed changes its numbers in the last bits, not what it is: a param and a tag,
        # never part of its key (a suite resumed on another machine finds its finished runs)
        params = {**_flatten(combination.config), "device": device_name(self.device)}
        run_id = self.tracker.start(combination.label, tags, params)
        run = Run.of(combination, run_id)
        try:
            with self._artifacts(run_id):
                self.tracker.log_text(run_id, json.dumps(combination.config, indent=2, sort_keys=True), "config.json")
        except DiskFullError as full:
            self._record(combination, run, "FAILED", str(full), hooks=False)
            raise
        return run

    @contextmanager
    def _artifacts(self, run_id: str) -> Iterator[None]:
        """Around a write to the run's artifacts: no space left there is the user's to fix, named by its folder."""
        try:
            yield
        except Exception as error:
            if not out_of_space(error):
                raise
            uri = self.tracker.client.get_run(run_id).info.artifact_uri
            where = urllib.parse.unquote(urllib.parse.urlparse(uri).path) if uri.startswith("file:") else uri
            raise DiskFullError(f"no space left on device writing the run's artifacts under {where} (free space "
                                "there or point the MLflow artifact root elsewhere; the next run resumes)") from None

    def _execute(self, combination: Combination, run: Run,
                 watch: Callable[[int, dict[str, float]], None] | None) -> dict[str, float]:
        """Train (or load) the run's model, then evaluate and measure it."""
        networks = [self._load_teacher(teacher) for teacher in combination.teachers]
        torch.manual_seed(combination.seed)
        model = combination.model_spec.build(combination.task)
        if combination.init is not None:
            model = self._load_kept(combination.init, model)
        model = self._placed(model, combination.recipe)
        transform = combination.transform
        if transform is not None:
            if transform.cpu_only and self.device.type != "cpu":
                raise IncompatibleCombination(f"{transform.label} runs on the CPU only, not {self.device.type}")
            model = transform.before_training(model, combination.task)
        pretrained = combination.role == "teacher" and combination.model_spec.pretrained
        self.progress.start_run(combination, 0 if pretrained else combination.recipe.epochs)
        curves: list[tuple[int | None, dict[str, float]]] = []
        context = self._context(combination, run, model, networks, watch, curves)
        if pretrained:
            trained = model
            self.tracker.set_tags(run.run_id, {"kdbench.pretrained": "true"})
        elif combination.role == "teacher" and self.cache.has(combination.key) and not self.rerun:
            # trained by an earlier suite or invocation: evaluate the cached checkpoint, don't retrain, and
            # log the curves its training logged (its own run may have been killed before it was recorded)
            trained = self.cache.load(combination.key, model)
            for step, metrics in self.cache.curves(combination.key):
                self.tracker.log_metrics(run.run_id, metrics, step)
            self.tracker.set_tags(run.run_id, {"kdbench.teacher_cache": "hit"})
        else:
            with determinism(self.device, combination.recipe.deterministic):
                trained = train(replace(context, model=torch.compile(model)) if combination.recipe.compile
                                else context)
            trained = getattr(trained, "_orig_mod", trained)  # a compiled model's own module, for its state dict
            if combination.saves_weights:
                self.cache.save(combination.key, trained, curves)
            if transform is not None:
                trained = self._transformed(transform, context, trained)
        if context.teachers:
            self.tracker.set_tags(run.run_id, {"kdbench.teacher_outputs_cached":
                                               str(context.teachers[0].cached).lower()})
        metrics = self._evaluate(combination, run, trained, networks, context.method)
        metrics.update(self._measure(combination, run, trained, networks, context))
        return metrics

    def _transformed(self, transform: StudentTransform, context: TrainContext, trained: nn.Module) -> nn.Module:
        """The trained student compressed, then fine-tuned by its own method if the transform asks:
        the phase's epochs are logged after the first phase's, as one run's history."""
        compressed = transform.after_training(trained, context.task)
        recipe = transform.fine_tune(context.recipe)
        if recipe is None:
            return compressed
        offset = context.recipe.epochs
        phase = replace(context, model=compressed, recipe=recipe, fine_tuning=True,
                        on_epoch=lambda epoch, metrics: context.on_epoch(offset + epoch, metrics))
        return train(phase)

    def _load_teacher(self, teacher: Combination) -> nn.Module:
        """A trained teacher's network, from the cache its own run wrote (a pretrained one built again)."""
        torch.manual_seed(teacher.seed)
        if teacher.model_spec.pretrained:
            return self._placed(teacher.model_spec.build(teacher.task), teacher.recipe)
        network = self._load_kept(teacher, teacher.model_spec.build(teacher.task))
        return self._placed(network, teacher.recipe)

    def _load_kept(self, source: Combination, model: nn.Module) -> nn.Module:
        """``model`` with the weights ``source``'s run left in the cache (read to the CPU)."""
        what = "teacher" if source.role == "teacher" else "init"
        if source.key in self.failed_dependencies:
            raise RuntimeError(f"{what} run failed: {self.failed_dependencies[source.key]}")
        if not self.cache.has(source.key):
            raise RuntimeError(f"{what} {source.label} has no checkpoint in the cache: its run has not finished")
        return self.cache.load(source.key, model)

    def _placed(self, model: nn.Module, recipe: Recipe) -> nn.Module:
        """``model`` on the run's device, in channels-last layout when its recipe asks for it."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if recipe.channels_last else model

    def _context(self, combination: Combination, run: Run, model: nn.Module, networks: list[nn.Module],
                 watch: Callable[[int, dict[str, float]], None] | None,
                 curves: list[tuple[int | None, dict[str, float]]]) -> TrainContext:
        """The run's training context: its method (if any) with a handle on each teacher, and the logging,
        each call of which is also appended to ``curves`` (a checkpoint keeps them)."""

        def log(metrics: dict[str, float], step: int | None = None) -> None:
            curves.append((step, dict(metrics)))
            self.tracker.log_metrics(run.run_id, metrics, step)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            log(metrics, epoch)
            self.hook.kdbench_epoch_end(run=run, epoch=epoch, metrics=metrics)
            self.progress.epoch(epoch, metrics)
            if watch is not None:
                watch(epoch, metrics)

        role = "teacher" if combination.role == "teacher" else "student"
        method, teachers, task = None, (), combination.task
        if combination.method is not None and combination.method.data_free:
            task = without_training_inputs(task, combination.method.name)
        if combination.method is not None:
            cached = combination.task.deterministic(combination.recipe)
            self._tables = {k: v for k, v in self._tables.items() if k in {t.key for t in combination.teachers}}
            teachers = tuple(
                Teacher(task, network, method=combination.method.name, needs=combination.method.needs,
                        cached=cached, tables=self._tables, key=teacher.key)
                for teacher, network in zip(combination.teachers, networks, strict=True))
            method = combination.method(task, list(teachers), **combination.params)
        return TrainContext(task=task, model=model, role=role, recipe=combination.recipe,
                            seed=combination.seed, method=method, teachers=teachers,
                            checkpoint=combination.checkpoint, device=self.device, on_epoch=on_epoch,
                            on_batch=self.progress.batch,
                            build_model=lambda name=None: self._build(combination, name),
                            log=log)

    def _evaluate(self, combination: Combination, run: Run, trained: nn.Module,
                  networks: list[nn.Module], method: Method | None) -> dict[str, float]:
        """Metrics on the run's split — test, or val for a tuning trial — (fidelity against a single
        teacher), and the task's pictures and samples of a test evaluation (the method's samples
        too), logged with the run."""
        task, role, split = run.task, "teacher" if run.role == "teacher" else "student", combination.split
        reference = networks[0] if len(networks) == 1 else None
        metrics = {f"{split}_{k}": v for k, v in task.evaluate(trained, split, role, reference=reference).items()}
        if split != "test":
            return metrics
        pictures = task.pictures(trained, role)
        samples = {**task.text_samples(trained, role), **(method.samples() if method is not None else {})}
        _check_names(run, "picture", pictures, ".png")
        _check_names(run, "sample", samples, ".txt")
        with self._artifacts(run.run_id):
            if pictures:
                self.tracker.log_pictures(run.run_id, pictures)
            if samples:
                self.tracker.log_samples(run.run_id, samples)
        return metrics

    def _measure(self, combination: Combination, run: Run, trained: nn.Module, networks: list[nn.Module],
                 context: TrainContext) -> dict[str, float]:
        """Size and single-sample latency of the trained model (and of the first teacher), and the
        method's own trainable extras."""
        task, role = run.task, "teacher" if run.role == "teacher" else "student"
        sample = task.latency_input(role)
        metrics = measure(on_cpu(trained), sample)
        if combination.deployment:
            metrics.update(deployment_latency(on_cpu(trained), task.deployment_input(role, 64), sample))
        if self.device.type == "cuda":
            metrics["latency_ms_cuda"] = device_latency(trained, sample)
        if context.method is not None:
            metrics["extra_params"] = float(sum(p.numel() for p in context.method.parameters() if p.requires_grad))
        if networks:
            teacher = measure(on_cpu(networks[0]), task.latency_input("teacher"))
            metrics.update({f"teacher_{k}": v for k, v in teacher.items()})
        return metrics

    def _build(self, combination: Combination, name: str | None) -> nn.Module:
        """A fresh model for a method that trains more than one (peers, generations, assistants)."""
        if name is None:
            return self._placed(combination.model_spec.build(combination.task), combination.recipe)
        spec = self.registry.students.entries.get(name) or self.registry.teachers.get(name)
        return self._placed(spec.build(combination.task), combination.recipe)


def _check_names(run: Run, what: str, names: Iterable[str], suffix: str) -> None:
    """Fail the run on a task's artifact name that could leave its folder or carry markup."""
    for name in names:
        if not re.fullmatch(PLAIN_NAME + re.escape(suffix), name):
            raise ValueError(f"task {run.task_spec.name}: {what} name {name!r} is not a plain {suffix} name")


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
