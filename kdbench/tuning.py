"""Fair tuning: every (task, pair, method) of a suite — the baseline included — gets the same number
of trials, each scored on the validation split only, with the paper's defaults as the first.

One Optuna study per (suite's tune block, task, pair, method), named by the hash of what it
tunes, in RDB storage (a SQLite file beside the MLflow store by default), so a killed
``kdbench tune`` resumes: a trial that was running when the process died is marked failed
and does not count (its MLflow run, left RUNNING, is marked KILLED), unless its run had been
recorded before the study heard, when the study is told that record; the study ends with
exactly ``trials`` counted trials. The sampler is TPE, seeded with the block's seed plus the
number of trials counted or in flight: a reseeded sampler would otherwise replay its first
draws after a restart, while a trial killed uncounted is drawn again as it was, so a resumed
study holds the trials an uninterrupted one does.

TPE starts from a third of the budget drawn at random (``startup_trials``). A median pruner
stops a trial whose validation curve falls below the median of the trials before it at the
same epoch (after the first four, from half its epochs: ``warmup``); a pruned trial counts
towards the budget, as it spent its share. Every trial is an MLflow run (role 'trial') in the
suite's tuning experiment, ``<suite>-tune``, under one parent run per study, so no trial can
reach a leaderboard. Teachers are trained by
their own runs in the suite's experiment first, and every trial reuses them from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from kdbench.errors import IncompatibleCombination, Stopped, UserError
from kdbench.hashing import canonical_json, config_hash
from kdbench.plan import Combination, retuned
from kdbench.runner import Outcome, Runner
from kdbench.search_space import Distribution, draw, method_space, parse
from kdbench.suite import Suite
from kdbench.tracking import RunRecord, Tracker

RECIPE = "recipe."
"""Prefix of searched recipe fields among a trial's parameters."""
PRUNE_AFTER = 4
"""Trials that run to the end before the median pruner may stop one: its median needs a few curves."""
WARMUP = 2
"""The earliest epoch the pruner may stop a trial at (epochs count from 1): never on one point alone."""
PROTOCOL = ("TPE after max(3, budget // 3) random trials (the defaults among them); median pruner after "
            f"{PRUNE_AFTER} full trials, from half the epochs")
"""The search's rules, part of every study's identity: a study made under other rules is another study."""
COUNTED = "kdbench_counted"
"""A trial's user attribute: it ran to an outcome (finished, or failed by itself) and counts towards the budget."""
INCOMPATIBLE = "kdbench_incompatible"
"""A trial's user attribute: the run was n/a, for a reason known only once its models were built (a
feature the student lacks). No setting changes that, so the study stops there and is n/a itself."""


def startup_trials(budget: int) -> int:
    """Random draws before TPE models anything. Optuna's default, 10, would make a budget of 10 or
    fewer pure random search; a third keeps most of a small budget for the model."""
    return max(3, budget // 3)


def warmup(epochs: int) -> int:
    """The first epoch a trial of ``epochs`` may be pruned at: half-way, because a low learning rate
    starts slowly and a curve's first epochs rank configurations by speed, not by where they end."""
    return max(WARMUP, epochs // 2)


@dataclass(frozen=True)
class Study:
    """One (task, pair, method) of a suite and where its search runs."""

    name: str
    combination: Combination
    """The student combination of the case's first seed: what each trial varies."""
    space: dict[str, Distribution]
    """Method parameters by name, recipe fields as ``recipe.<field>``."""
    defaults: dict[str, Any]
    higher_is_better: bool

    @property
    def label(self) -> str:
        c = self.combination
        pair = "+".join(t.model_spec.name for t in c.teachers) or "-"
        return f"{c.task_spec.name} · {pair} → {c.model_spec.name} · {c.variant}"


def study_of(suite: Suite, combination: Combination) -> Study:
    """The study that tunes ``combination``'s (task, pair, method), whatever its seed."""
    block, method = suite.tune, combination.method
    assert method is not None
    space = {**method_space(method.defaults, method.search_space, block.params.get(method.name, {})),
             **{RECIPE + name: parse(value) for name, value in block.recipe.items()}}
    defaults = {**{k: combination.params[k] for k in space if not k.startswith(RECIPE)},
                **{k: getattr(combination.recipe, k[len(RECIPE):]) for k in space if k.startswith(RECIPE)}}
    identity = {**_seedless(combination.config), "tune": {
        "space": {k: v.describe() for k, v in sorted(space.items())}, "epochs": block.epochs, "seed": block.seed,
        "protocol": PROTOCOL}}
    return Study(f"{suite.name}-{config_hash(identity)[:16]}", combination, space, defaults,
                 combination.task.higher_is_better)


def _seedless(config: Any) -> Any:
    """A config with every seed taken out (its teachers' too): one study serves every seed."""
    if isinstance(config, dict):
        return {k: _seedless(v) for k, v in config.items() if k != "seed"}
    if isinstance(config, list):
        return [_seedless(v) for v in config]
    return config


def studies(suite: Suite, combinations: list[Combination]) -> list[Study]:
    """The suite's studies: one per (task, pair, method) that runs, at its case's first seed."""
    found: dict[str, Study] = {}
    for combination in sorted(students(combinations), key=lambda c: c.seed):
        study = study_of(suite, combination)
        found.setdefault(study.name, study)
    return list(found.values())


def students(combinations: list[Combination]) -> list[Combination]:
    """The combinations tuning is for: every method's runs that can run (teachers are not tuned).

    A run that starts from another's weights (a case's ``init``) would need that run tuned first and
    its trials to start from the tuned weights; until tuning orders studies that way, such suites
    are refused rather than tuned against an untuned start."""
    for combination in combinations:
        if combination.init is not None:
            raise UserError(f"{combination.label} starts from another case's run (init): kdbench tune and "
                            "--tuned do not tune such suites yet; run it untuned")
    return [c for c in combinations if c.role != "teacher" and c.skip_reason is None]


def storage_url(tracking_uri: str) -> str:
    """Beside an embedded MLflow store: its folder's ``optuna.db``; a server's users pass ``--storage``."""
    from kdbench.leaderboard.store import sqlite_path

    database = sqlite_path(tracking_uri)
    if database is None:
        raise UserError("the MLflow store is a server: pass --storage with an RDB URL for the tuning studies")
    return f"sqlite:///{database.resolve().parent / 'optuna.db'}"


@cache
def rdb(url: str) -> Any:
    """One Optuna storage per URL and process: opening one (an engine, a schema check) costs more than
    a short trial's bookkeeping, and every trial of a process reads and writes through the same."""
    import optuna
    from sqlalchemy.pool import NullPool

    from kdbench.tracking import created_whole

    if url.startswith("sqlite:///"):  # its schema made whole: a kill among its statements would spoil the file
        created_whole(Path(url.removeprefix("sqlite:///")),
                      lambda temporary: optuna.storages.RDBStorage(temporary, engine_kwargs={"poolclass": NullPool}))
    return optuna.storages.RDBStorage(url)


def load_study(study: Study, storage: str, create: bool = True) -> Any:
    """The Optuna study, created when absent (``create``) — else ``None`` when it was never run."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    direction = "maximize" if study.higher_is_better else "minimize"
    if not create:
        try:
            return optuna.load_study(study_name=study.name, storage=rdb(storage))
        except KeyError:
            return None
    return optuna.create_study(study_name=study.name, storage=rdb(storage), direction=direction, load_if_exists=True,
                               pruner=_pruner(study.combination.recipe.epochs))


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's values as (method parameters, recipe fields)."""
    params = {k: v for k, v in values.items() if not k.startswith(RECIPE)}
    return params, {k[len(RECIPE):]: v for k, v in values.items() if k.startswith(RECIPE)}


def incompatible(optuna_study: Any) -> str | None:
    """Why the study's combination cannot run, when a trial found out (``INCOMPATIBLE``); else ``None``."""
    return next((t.user_attrs[INCOMPATIBLE] for t in optuna_study.get_trials(deepcopy=False)
                 if INCOMPATIBLE in t.user_attrs), None)


def counted(optuna_study: Any) -> list[Any]:
    """The trials that count towards the budget: finished, or failed by themselves (not by a kill)."""
    return [t for t in optuna_study.get_trials(deepcopy=False) if t.user_attrs.get(COUNTED)]


@dataclass(frozen=True)
class TrialSpec:
    """One trial as a unit of work: all a process (this one, a pool worker, a Ray task) needs to run it,
    report its validation curve to the study (for the pruner) and put its MLflow run under the study's."""

    study: str
    number: int
    trial_id: int
    """Optuna's id of the trial in ``storage``: a worker reports its curve to it."""
    base: str
    """Key of the study's combination, which the trial varies."""
    values: dict[str, Any]
    epochs: int | None
    storage: str
    parent: str
    """The study's MLflow run."""
    may_prune: bool
    """Enough trials have finished for the median to mean something: the pruner is asked at all."""


def trial_combination(base: Combination, spec: TrialSpec) -> Combination:
    """The combination a trial runs: the study's, at the trial's values, scored on val."""
    params, recipe = split(spec.values)
    return retuned(base, params, {**recipe, **({"epochs": spec.epochs} if spec.epochs else {})},
                   {"study": spec.study, "trial": spec.number}, trial=True)


def run_trial(runner: Runner, combination: Combination, spec: TrialSpec) -> Outcome:
    """Run one trial's ``combination`` as a run of ``runner`` (whose tracker is the tuning experiment),
    reporting each epoch's validation score to the study, which may prune it."""
    import optuna

    key = f"val_{combination.task.primary_metric}"
    first = warmup(combination.recipe.epochs)
    trial = optuna.trial.Trial(
        optuna.load_study(study_name=spec.study, storage=rdb(spec.storage), pruner=_pruner(combination.recipe.epochs)),
        spec.trial_id)

    def watch(epoch: int, metrics: dict[str, float]) -> None:
        if key in metrics and epoch >= first:  # the pruner never compares earlier epochs: not worth a write
            trial.report(metrics[key], epoch)
            # asking the pruner reads every trial's curve: only where its answer can be yes
            if spec.may_prune and trial.should_prune():
                raise Stopped(f"pruned at epoch {epoch}: {key} {metrics[key]:.4g} is below the median of the "
                              "trials before it at that epoch")

    return runner.run_one(combination, {"mlflow.parentRunId": spec.parent}, watch)


class Tuning:
    """The studies of one ``kdbench tune``: asks each for trials until it has its budget, and tells it
    each trial's outcome. Trials run wherever the caller sends them; asking and telling happen here
    only, so no study gets one trial more than its budget however many run at once."""

    def __init__(self, chosen: list[Study], storage: str, trials: int, seed: int, epochs: int | None,
                 tracker: Tracker) -> None:
        import optuna

        self.studies = chosen
        self.storage, self.trials, self.seed, self.epochs = storage, trials, seed, epochs
        self.optuna: dict[str, Any] = {}
        self.parents: dict[str, str] = {}
        self.asked: dict[int, Any] = {}
        """Trials in flight by Optuna id: the driver's handle to set attributes and tell."""
        for study in chosen:
            if not study.combination.task.has_split("val"):
                raise UserError(f"{study.label}: task {study.combination.task_spec.name} has no validation "
                                "split, and trials are never scored on test")
            optuna_study = load_study(study, storage)
            _settle(study, optuna_study, tracker)
            # the defaults go first, and again if the process died while trying them
            waiting = optuna.trial.TrialState.WAITING
            if not any(t.user_attrs.get("defaults") and (t.state == waiting or t.user_attrs.get(COUNTED))
                       for t in optuna_study.get_trials(deepcopy=False)):
                optuna_study.enqueue_trial(study.defaults, user_attrs={"defaults": True})
            self.optuna[study.name] = optuna_study
            self.parents[study.name] = _parent_run(tracker, study)

    def budget(self, study: Study) -> int:
        return self.trials if study.space else 1  # nothing to search: the defaults are all there is

    def ask(self, study: Study) -> TrialSpec | None:
        """The study's next trial, or ``None`` once its counted and running trials fill its budget."""
        import optuna

        optuna_study = self.optuna[study.name]
        done = counted(optuna_study)
        running = sum(1 for t in self.asked.values() if t.study is optuna_study)
        if len(done) + running >= self.budget(study) or incompatible(optuna_study) is not None:
            return None
        # reseeded by the trials counted or in flight: a restarted sampler must not replay the draws of
        # trials that count, and draws again what a trial killed uncounted drew; the constant liar keeps
        # trials asked while others still run from landing on the same point
        optuna_study.sampler = optuna.samplers.TPESampler(
            seed=self.seed + len(done) + running, constant_liar=True,
            n_startup_trials=startup_trials(self.budget(study)))
        trial = optuna_study.ask()
        values = draw(study.space, trial)
        self.asked[trial._trial_id] = trial  # Optuna's storage id: the one handle a worker can rebuild it from
        may_prune = sum(t.state == optuna.trial.TrialState.COMPLETE for t in done) >= PRUNE_AFTER
        return TrialSpec(study.name, trial.number, trial._trial_id, study.combination.key, values, self.epochs,
                         self.storage, self.parents[study.name], may_prune)

    def tell(self, spec: TrialSpec, outcome: Outcome | None) -> None:
        """Record a trial's outcome; ``None`` when its process died: failed, and not counted."""
        trial = self.asked.pop(spec.trial_id)
        _tell(trial, outcome)
        if outcome is None and trial.user_attrs.get("defaults"):  # the defaults are always tried: ask them again
            trial.study.enqueue_trial(spec.values, user_attrs={"defaults": True})


def _tell(trial: Any, outcome: Outcome | None) -> None:
    """Tell the study of ``trial`` (an Optuna ``Trial``) its outcome; ``None``: failed, and not counted."""
    import optuna

    optuna_study = trial.study
    if outcome is None:
        optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_user_attr(COUNTED, True)
    value = outcome.metrics.get(f"val_{outcome.combination.task.primary_metric}")
    if outcome.status == "N/A":
        trial.set_user_attr(INCOMPATIBLE, outcome.error[:500])
        optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif outcome.status == "PRUNED":
        optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif outcome.status == "FINISHED" and value is not None:
        optuna_study.tell(trial, value)
    else:
        trial.set_user_attr("error", outcome.error[:500])
        optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _settle(study: Study, optuna_study: Any, tracker: Tracker) -> None:
    """What a killed ``kdbench tune`` left of the study, settled before it goes on: each MLflow run of its
    trials still RUNNING is marked KILLED; each trial still running is told what its run recorded, when
    the run ended before the study heard, else failed and not counted."""
    import optuna

    runs = {r.tags.get("kdbench.trial"): r for r in tracker.runs()
            if r.tags.get("kdbench.role") == "trial" and r.tags.get("kdbench.study") == study.name}
    for record in runs.values():
        if record.status == "RUNNING":
            tracker.end(record.run_id, "KILLED")
    for trial in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        record = runs.get(str(trial.number))
        outcome = None if record is None else _recorded(study, record, tracker)
        _tell(optuna.trial.Trial(optuna_study, trial._trial_id), outcome)


def _recorded(study: Study, record: RunRecord, tracker: Tracker) -> Outcome | None:
    """The outcome a trial's finished MLflow run holds, as the runner returned it; ``None`` for one that did
    not finish (killed, or failed: a failure the study never heard of may be the environment's, such as a
    full disk, so its trial runs again rather than counting)."""
    if record.status != "FINISHED":
        return None
    if "kdbench.skipped" in record.tags:
        return Outcome(study.combination, "N/A", record.tags["kdbench.skipped"])
    if "kdbench.pruned" in record.tags:
        return Outcome(study.combination, "PRUNED", record.tags["kdbench.pruned"])
    key = f"val_{study.combination.task.primary_metric}"
    final = [value for step, value in tracker.history(record.run_id, key) if step == 0]  # epochs log steps 1…
    return Outcome(study.combination, "FINISHED", metrics={key: final[-1]} if final else {})


def tune(tuning: Tuning, runner: Runner) -> None:
    """Run every study of ``tuning`` to its budget here, one trial after another."""
    for study in tuning.studies:
        while (spec := tuning.ask(study)) is not None:
            combination = trial_combination(study.combination, spec)
            runner.progress.start_run(combination, combination.recipe.epochs)
            outcome = run_trial(runner, combination, spec)
            runner.progress.end_run(outcome)
            tuning.tell(spec, outcome)


def _pruner(epochs: int) -> Any:
    import optuna

    # a trial reports epoch e as step e: Optuna's first prunable step is n_warmup_steps itself
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER, n_warmup_steps=warmup(epochs))


def _parent_run(tracker: Tracker, study: Study) -> str:
    """The study's MLflow run in the tuning experiment, started on its first trial, found again on resuming."""
    for record in tracker.runs():
        if record.tags.get("kdbench.role") == "study" and record.tags.get("kdbench.study") == study.name:
            return record.run_id
    return tracker.start(study.label, {"kdbench.role": "study", "kdbench.study": study.name}, {})


def best(study: Study, storage: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method parameters, recipe fields) of the study's best trial, and the protocol it was chosen by."""
    import optuna

    optuna_study = load_study(study, storage, create=False)
    complete = [] if optuna_study is None else optuna_study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        reason = None if optuna_study is None else incompatible(optuna_study)
        if reason is not None:
            raise IncompatibleCombination(reason)
        raise UserError(f"{study.label}: no finished tuning trial in {storage}; run kdbench tune first")
    sign = 1 if study.higher_is_better else -1
    chosen = max(complete, key=lambda t: sign * t.value)
    default = next((t for t in complete if t.user_attrs.get("defaults")), None)
    values = {k: chosen.params[k] for k in study.space}
    trials = len(counted(optuna_study))
    return values, {
        "study": study.name, "trials": trials, "split": "val",
        "sampler": f"TPE after {startup_trials(trials)} random", "protocol": PROTOCOL,
        "space": canonical_json({k: v.describe() for k, v in sorted(study.space.items())}),
        "val": chosen.value, "val_defaults": None if default is None else default.value,
    }


def tuned(suite: Suite, combinations: list[Combination], storage: str) -> list[Combination]:
    """The suite's combinations with every method's runs at the values its study chose (teachers as they are)."""
    chosen: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    tunable = {id(c) for c in students(combinations)}
    result = []
    for combination in combinations:
        if id(combination) not in tunable:
            result.append(combination)
            continue
        study = study_of(suite, combination)
        if study.name not in chosen:
            try:
                chosen[study.name] = best(study, storage)
            except IncompatibleCombination as reason:  # n/a at every setting: the tuned run is n/a too
                chosen[study.name] = {}, {"study": study.name, "incompatible": str(reason)}
        values, note = chosen[study.name]
        params, recipe = split(values)
        run = retuned(combination, params, recipe, note, trial=False)
        result.append(replace(run, skip_reason=note["incompatible"]) if "incompatible" in note else run)
    return result
