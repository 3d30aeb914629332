"""Fair tuning: every (task, pair, method) of a suite — the baseline included — gets the same number
of trials, each scored on the validation split only, with the paper's defaults as the first.

One Optuna study per (suite's tune block, task, pair, method), named by the hash of what it
tunes, in RDB storage (a SQLite file beside the MLflow store by default), so a killed
``kdbench tune`` resumes: a trial that was running when the process died is marked failed
and does not count, and the study ends with exactly ``trials`` finished trials. The sampler
is TPE, seeded with the block's seed plus the number of trials already in the study (a
reseeded sampler would otherwise replay its first draws after a restart).

A median pruner stops a trial whose validation curve falls below the median of the trials
before it at the same epoch (after the first four, and the first epoch); a pruned trial counts
towards the budget, as it spent its share. Every trial is an MLflow run (role 'trial') in the
suite's tuning experiment, ``<suite>-tune``, under one parent run per study, so no trial can
reach a leaderboard. Teachers are trained by
their own runs in the suite's experiment first, and every trial reuses them from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kdbench.errors import Stopped, UserError
from kdbench.hashing import canonical_json, config_hash
from kdbench.plan import Combination, retuned
from kdbench.runner import Runner
from kdbench.search_space import Distribution, draw, method_space, parse
from kdbench.suite import Suite
from kdbench.tracking import Tracker

RECIPE = "recipe."
"""Prefix of searched recipe fields among a trial's parameters."""
PRUNE_AFTER = 4
"""Trials that run to the end before the median pruner may stop one: its median needs a few curves."""
WARMUP = 2
"""The first epoch the pruner may stop a trial at (epochs count from 1): never on one point alone."""
COUNTED = "kdbench_counted"
"""A trial's user attribute: it ran to an outcome (finished, or failed by itself) and counts towards the budget."""


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
        "space": {k: v.describe() for k, v in sorted(space.items())}, "epochs": block.epochs, "seed": block.seed}}
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
    """The combinations tuning is for: every method's runs that can run (teachers are not tuned)."""
    return [c for c in combinations if c.role != "teacher" and c.skip_reason is None]


def storage_url(tracking_uri: str) -> str:
    """Beside an embedded MLflow store: its folder's ``optuna.db``; a server's users pass ``--storage``."""
    from kdbench.leaderboard.store import sqlite_path

    database = sqlite_path(tracking_uri)
    if database is None:
        raise UserError("the MLflow store is a server: pass --storage with an RDB URL for the tuning studies")
    return f"sqlite:///{database.resolve().parent / 'optuna.db'}"


def load_study(study: Study, storage: str, create: bool = True) -> Any:
    """The Optuna study, created when absent (``create``) — else ``None`` when it was never run."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    direction = "maximize" if study.higher_is_better else "minimize"
    if not create:
        try:
            return optuna.load_study(study_name=study.name, storage=storage)
        except KeyError:
            return None
    return optuna.create_study(study_name=study.name, storage=storage, direction=direction, load_if_exists=True,
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER, n_warmup_steps=WARMUP))


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's values as (method parameters, recipe fields)."""
    params = {k: v for k, v in values.items() if not k.startswith(RECIPE)}
    return params, {k[len(RECIPE):]: v for k, v in values.items() if k.startswith(RECIPE)}


def counted(optuna_study: Any) -> list[Any]:
    """The trials that count towards the budget: finished, or failed by themselves (not by a kill)."""
    return [t for t in optuna_study.get_trials(deepcopy=False) if t.user_attrs.get(COUNTED)]


def tune(study: Study, storage: str, trials: int, runner: Runner, seed: int, epochs: int | None) -> Any:
    """Run ``study`` until it has ``trials`` counted trials, each a run of ``runner`` (whose tracker is the
    tuning experiment) under the study's parent run; return the Optuna study."""
    import optuna

    if not study.combination.task.has_split("val"):
        raise UserError(f"{study.label}: task {study.combination.task_spec.name} has no validation split, "
                        "and trials are never scored on test")
    optuna_study = load_study(study, storage)
    for trial in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        optuna_study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # its process was killed
    # the defaults go first, and again if the process died while trying them
    waiting = optuna.trial.TrialState.WAITING
    if not any(t.user_attrs.get("defaults") and (t.state == waiting or t.user_attrs.get(COUNTED))
               for t in optuna_study.get_trials(deepcopy=False)):
        optuna_study.enqueue_trial(study.defaults, user_attrs={"defaults": True})
    parent_id = _parent_run(runner.tracker, study)
    trials = trials if study.space else 1  # nothing to search: the defaults are all there is
    while len(done := counted(optuna_study)) < trials:
        optuna_study.sampler = optuna.samplers.TPESampler(seed=seed + len(optuna_study.get_trials(deepcopy=False)))
        trial = optuna_study.ask()
        params, recipe = split(draw(study.space, trial))
        note = {"study": study.name, "trial": trial.number}
        combination = retuned(study.combination, params, {**recipe, **({"epochs": epochs} if epochs else {})},
                              note, trial=True)
        key = f"val_{combination.task.primary_metric}"
        may_prune = sum(t.state == optuna.trial.TrialState.COMPLETE for t in done) >= PRUNE_AFTER

        def watch(epoch: int, metrics: dict[str, float], trial: Any = trial, key: str = key,
                  may_prune: bool = may_prune) -> None:
            if key in metrics:
                trial.report(metrics[key], epoch)
                # asking the pruner reads every trial's curve: only where its answer can be yes
                if may_prune and epoch >= WARMUP and trial.should_prune():
                    raise Stopped(f"pruned at epoch {epoch}: {key} {metrics[key]:.4g} is below the median of the "
                                  "trials before it at that epoch")

        runner.progress.start_run(combination, combination.recipe.epochs)
        outcome = runner.run_one(combination, {"mlflow.parentRunId": parent_id}, watch)
        runner.progress.end_run(outcome)
        trial.set_user_attr(COUNTED, True)
        value = outcome.metrics.get(key)
        if outcome.status == "PRUNED":
            optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif outcome.status == "FINISHED" and value is not None:
            optuna_study.tell(trial, value)
        else:
            trial.set_user_attr("error", outcome.error[:500])
            optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return optuna_study


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
        raise UserError(f"{study.label}: no finished tuning trial in {storage}; run kdbench tune first")
    sign = 1 if study.higher_is_better else -1
    chosen = max(complete, key=lambda t: sign * t.value)
    default = next((t for t in complete if t.user_attrs.get("defaults")), None)
    values = {k: chosen.params[k] for k in study.space}
    return values, {
        "study": study.name, "trials": len(counted(optuna_study)), "sampler": "TPE", "split": "val",
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
            chosen[study.name] = best(study, storage)
        values, note = chosen[study.name]
        params, recipe = split(values)
        result.append(retuned(combination, params, recipe, note, trial=False))
    return result
