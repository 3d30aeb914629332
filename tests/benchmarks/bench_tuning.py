"""Tuning overhead: ``kdbench tune`` with N trials against N plain runs of the same configurations.

Both sides run in this process on the same threads, after the teacher is trained and cached:
first the study (Optuna TPE, its SQLite storage, an MLflow run per trial, the median pruner),
then the configurations its trials chose, each as one plain run of the runner to its last
epoch. The figure is the ratio of the two wall times (target ≤ 1.10×); trials the pruner stopped
make it smaller, so their count is printed beside it; ``PRUNE=0`` switches the pruner off, for
the bare cost of the study and its bookkeeping. ``TRIALS`` (default 8) and ``EPOCHS`` (the
student's, default 5) size it. Run: ``python -m tests.benchmarks.bench_tuning`` (digits: no data
root needed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.benchmarks.common import THREADS, seconds, setup

TRIALS = int(os.environ.get("TRIALS", "8"))
PRUNE = os.environ.get("PRUNE", "1") != "0"
EPOCHS = int(os.environ.get("EPOCHS", "5"))
SUITE = f"""
name: tuning-bench
tasks: [digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: [kd]
recipe:
  teacher: {{epochs: 5}}
  student: {{epochs: {EPOCHS}}}
tune:
  recipe: {{lr: {{low: 0.005, high: 0.5, log: true}}}}
"""


def main() -> None:
    import optuna

    import kdbench.tuning
    from kdbench.data_root import cache_dir
    from kdbench.plan import expand, retuned, task_instances
    from kdbench.registry import Registry
    from kdbench.runner import Runner
    from kdbench.suite import load_suite
    from kdbench.teacher_cache import TeacherCache
    from kdbench.tracking import Tracker, trials_experiment
    from kdbench.tuning import Tuning, split, storage_url, studies, tune

    setup()
    if not PRUNE:
        kdbench.tuning.PRUNE_AFTER = 10**9  # the median pruner never has enough finished trials to stop one
    folder = Path(tempfile.mkdtemp(prefix="kdbench-tuning-bench-"))
    os.chdir(folder)
    os.environ["KDBENCH_CACHE"] = str(folder / "cache")
    registry = Registry.load()
    suite_file = folder / "suite.yaml"
    suite_file.write_text(SUITE)
    suite = load_suite(suite_file, registry)
    combinations = expand(suite, registry, task_instances(suite, registry))
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}", suite.name)
    cache = TeacherCache(cache_dir())
    runner = Runner(registry, tracker, cache)
    runner.run([c for c in combinations if c.role == "teacher"])  # trained once, outside both timings
    (study,) = studies(suite, combinations)
    # one short untimed run first: the first run of a process pays lazy imports and warm-up that
    # would otherwise all land on whichever side goes first (each side still builds its own teacher table)
    warm = retuned(study.combination, {}, {"epochs": 1}, {"study": "warm-up", "trial": 0}, trial=True)
    Runner(registry, Tracker(tracker.uri, f"{suite.name}-warm-up"), cache).run_one(warm)
    storage = storage_url(tracker.uri)
    trial_runner = Runner(registry, Tracker(tracker.uri, trials_experiment(suite.name)), cache)
    tuned = seconds(lambda: tune(Tuning([study], storage, TRIALS, suite.tune.seed, None, trial_runner.tracker),
                                 trial_runner))

    trials = optuna.load_study(study_name=study.name, storage=storage).get_trials()
    plain_runner = Runner(registry, Tracker(tracker.uri, f"{suite.name}-plain"), cache)
    configurations = []
    for trial in trials:
        params, recipe = split(trial.params)
        note = {"study": f"{study.name}-plain", "trial": trial.number}  # its own key: run again, not skipped
        configurations.append(retuned(study.combination, params, recipe, note, trial=True))
    plain = seconds(lambda: [plain_runner.run_one(c) for c in configurations])
    pruned = sum(t.state.name == "PRUNED" for t in trials)
    print(f"threads {THREADS}; {TRIALS} trials of kd on digits (T, alpha, lr), {EPOCHS} student epochs each")
    print(f"kdbench tune            {tuned:7.1f} s  ({pruned} of {len(trials)} trials pruned)")
    print(f"the same {len(trials)} configurations, plain runs to the end: {plain:7.1f} s")
    print(f"tuning / plain runs     {tuned / plain:.3f}x  (target <= 1.10x)")


if __name__ == "__main__":
    main()
