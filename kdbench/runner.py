"""Running a suite: resume, teachers trained once, failures recorded, the suite goes on.

Each combination is one MLflow run keyed by its config hash. A key with a FINISHED
run is skipped (unless ``rerun``); FAILED and interrupted ones run again; a stale
RUNNING run left by a killed process is marked KILLED. After a rerun finishes, the
older FINISHED run of the same key is deleted, so one key never has two.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kdbench.errors import IncompatibleCombination, UserError
from kdbench.hashing import canonical_json
from kdbench.model_stats import measure
from kdbench.plan import Combination
from kdbench.registry import Registry
from kdbench.teacher_cache import TeacherCache
from kdbench.teacher_outputs import TeacherOutputs
from kdbench.tracking import RunRecord, Tracker
from kdbench.training import TrainContext, train

PICTURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.png")
"""Pictures become artifact and published file names: no folders, no markup."""


@dataclass
class Outcome:
    combination: Combination
    status: str
    """'FINISHED', 'FAILED', 'KILLED', 'SKIPPED' (already finished) or 'N/A' (incompatible)."""
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
                 progress: Progress | None = None, rerun: bool = False) -> None:
        self.registry = registry
        self.tracker = tracker
        self.cache = cache
        self.progress = progress or Progress()
        self.rerun = rerun
        self.hook = registry.manager.hook
        self.failed_teachers: dict[str, str] = {}
        self._previous: dict[str, list[RunRecord]] = {}
        self._tables: dict[str, torch.Tensor] = {}
        self.outcomes: list[Outcome] = []

    def pending(self, combinations: list[Combination]) -> tuple[list[Combination], list[Combination]]:
        """Split into (to run, already finished); mark stale RUNNING runs KILLED."""
        by_key: dict[str, list[RunRecord]] = {}
        for record in self.tracker.runs():
            by_key.setdefault(record.tags.get("kdbench.config_hash", ""), []).append(record)
        todo, done = [], []
        for combination in combinations:
            records = by_key.get(combination.key, [])
            for record in records:
                if record.status == "RUNNING":
                    self.tracker.end(record.run_id, "KILLED")
            finished = [r for r in records if r.status == "FINISHED"]
            skipped_before = finished and all("kdbench.skipped" in r.tags for r in finished)
            if finished and not self.rerun and not (skipped_before and combination.skip_reason is None):
                done.append(combination)
            else:
                todo.append(combination)
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

    def run_one(self, combination: Combination) -> Outcome:
        older = [r.run_id for r in self._previous.get(combination.key, []) if r.status == "FINISHED"]
        if combination.skip_reason is not None:
            run_id = self._start(combination, {"kdbench.skipped": combination.skip_reason})
            self.tracker.end(run_id, "FINISHED")
            self._delete(older)
            return Outcome(combination, "N/A", combination.skip_reason)
        run_id = self._start(combination, {})
        started = time.perf_counter()
        try:
            self.hook.kdbench_run_start(config=combination.config, run_id=run_id)
            metrics = self._execute(combination, run_id)
            metrics["wall_time_s"] = time.perf_counter() - started
            self.tracker.log_metrics(run_id, metrics)
            self.tracker.end(run_id, "FINISHED")
            self.hook.kdbench_run_end(config=combination.config, run_id=run_id, status="FINISHED", metrics=metrics)
        except KeyboardInterrupt:
            self.tracker.set_tags(run_id, {"kdbench.error": "interrupted (Ctrl-C)"})
            self.tracker.end(run_id, "KILLED")
            raise
        except IncompatibleCombination as reason:  # known only once models are built (a missing feature)
            self.tracker.set_tags(run_id, {"kdbench.skipped": str(reason)})
            self.tracker.end(run_id, "FINISHED")
            self.hook.kdbench_run_end(config=combination.config, run_id=run_id, status="N/A", metrics={})
            self._delete(older)
            return Outcome(combination, "N/A", str(reason))
        except UserError as error:  # the user must act (a corrupt checkpoint): record it, then stop the suite
            self.tracker.set_tags(run_id, {"kdbench.error": str(error)[:500]})
            self.tracker.end(run_id, "FAILED")
            self.hook.kdbench_run_end(config=combination.config, run_id=run_id, status="FAILED", metrics={})
            raise
        except Exception as error:  # recorded, and the suite goes on
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            self.tracker.log_text(run_id, traceback.format_exc(), "traceback.txt")
            self.tracker.set_tags(run_id, {"kdbench.error": reason})
            self.tracker.end(run_id, "FAILED")
            if combination.role == "teacher":
                self.failed_teachers[combination.key] = reason
            self.hook.kdbench_run_end(config=combination.config, run_id=run_id, status="FAILED", metrics={})
            return Outcome(combination, "FAILED", reason)
        self._delete(older)
        return Outcome(combination, "FINISHED", metrics=metrics)

    def record_failure(self, combination: Combination, reason: str) -> None:
        """Record a run FAILED that died with its process: its RUNNING run if it got that far, else a new one."""
        running = [r.run_id for r in self.tracker.runs()
                   if r.status == "RUNNING" and r.tags.get("kdbench.config_hash") == combination.key]
        for run_id in running or [self._start(combination, {})]:
            self.tracker.set_tags(run_id, {"kdbench.error": reason})
            self.tracker.end(run_id, "FAILED")

    def _start(self, combination: Combination, extra_tags: dict[str, str]) -> str:
        from kdbench.provenance import git_commit, kdbench_version

        tags = {**combination.tags(), **extra_tags, "kdbench.version": kdbench_version(),
                "kdbench.commit": git_commit(), "kdbench.params": canonical_json(combination.params)}
        run_id = self.tracker.start(combination.label, tags, _flatten(combination.config))
        self.tracker.log_text(run_id, json.dumps(combination.config, indent=2, sort_keys=True), "config.json")
        return run_id

    def _delete(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            self.tracker.delete(run_id)

    def _execute(self, combination: Combination, run_id: str) -> dict[str, float]:
        task = combination.task
        method = combination.method
        teachers = [self.teacher(teacher) for teacher in combination.teachers]
        torch.manual_seed(combination.seed)
        model = combination.model_spec.build(task)
        self.progress.start_run(combination, combination.recipe.epochs)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            self.tracker.log_metrics(run_id, metrics, step=epoch)
            self.hook.kdbench_epoch_end(config=combination.config, run_id=run_id, epoch=epoch, metrics=metrics)
            self.progress.epoch(epoch, metrics)

        role = "teacher" if combination.role == "teacher" else "student"
        context = TrainContext(task=task, model=model, role=role, recipe=combination.recipe, seed=combination.seed,
                               checkpoint=combination.checkpoint, on_epoch=on_epoch, on_batch=self.progress.batch,
                               build_model=lambda name=None: self._build(combination, name),
                               log=lambda metrics, step=None: self.tracker.log_metrics(run_id, metrics, step))
        if method is not None:
            several = method.max_teachers > 1
            arguments = teachers if several else (teachers[0] if teachers else None)
            context.method = method(task, model, arguments, **combination.params)
            cached = method.needs == "logits" and task.deterministic(combination.recipe)
            # keep only this run's teachers' tables: runs come seed by seed, so memory stays flat
            current = {t.key for t in combination.teachers}
            self._tables = {k: v for k, v in self._tables.items() if k in current}
            pairs = zip(combination.teachers, teachers, strict=True)
            outputs = [self._teacher_outputs(run, teacher, cached) for run, teacher in pairs]
            context.teacher = outputs if several else (outputs[0] if outputs else None)
            if outputs:
                self.tracker.set_tags(run_id, {"kdbench.teacher_outputs_cached": str(outputs[0].cached).lower()})
        if combination.role == "teacher" and self.cache.has(combination.key) and not self.rerun:
            # trained by an earlier suite or invocation: evaluate the cached checkpoint, don't retrain
            trained = self.cache.load(combination.key, model)
            self.tracker.set_tags(run_id, {"kdbench.teacher_cache": "hit"})
        else:
            trained = train(context)
            if combination.role == "teacher":
                self.cache.save(combination.key, trained)
        reference = teachers[0] if len(teachers) == 1 else None
        evaluated = task.evaluate(trained, "test", role, reference=reference)
        metrics = {f"test_{k}": v for k, v in evaluated.items()}
        pictures = task.pictures(trained, role)
        for name in pictures:
            if not PICTURE_NAME.fullmatch(name):
                raise ValueError(f"task {combination.task_spec.name}: picture name {name!r} is not a plain .png name")
        if pictures:
            self.tracker.log_pictures(run_id, pictures)
        metrics.update(measure(trained, task.latency_input(role)))
        if context.method is not None:
            metrics["extra_params"] = float(sum(p.numel() for p in context.method.parameters()))
        if teachers:
            teacher_stats = measure(teachers[0], task.latency_input("teacher"))
            metrics.update({f"teacher_{k}": v for k, v in teacher_stats.items()})
        return metrics

    def _teacher_outputs(self, combination: Combination, model: nn.Module, cached: bool) -> TeacherOutputs:
        """Teacher outputs, with the cached table computed once per teacher and reused by every method."""
        outputs = TeacherOutputs(combination.task, model, cached=cached, table=self._tables.get(combination.key))
        if outputs.table is not None:
            self._tables[combination.key] = outputs.table
        return outputs

    def _build(self, combination: Combination, name: str | None) -> nn.Module:
        """A fresh model for a method that trains more than one (peers, generations, assistants)."""
        if name is None:
            return combination.model_spec.build(combination.task)
        spec = self.registry.students.entries.get(name) or self.registry.teachers.get(name)
        return spec.build(combination.task)

    def teacher(self, combination: Combination) -> nn.Module:
        """The trained teacher of a combination: from the cache, else trained now (unlogged)."""
        if combination.key in self.failed_teachers:
            raise RuntimeError(f"teacher run failed: {self.failed_teachers[combination.key]}")
        torch.manual_seed(combination.seed)
        model = combination.model_spec.build(combination.task)
        if self.cache.has(combination.key):
            return self.cache.load(combination.key, model)
        self.progress.note(f"teacher {combination.label} is not in the cache; training it")
        context = TrainContext(task=combination.task, model=model, role="teacher", recipe=combination.recipe,
                               seed=combination.seed, checkpoint=combination.checkpoint)
        trained = train(context)
        self.cache.save(combination.key, trained)
        return trained


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
