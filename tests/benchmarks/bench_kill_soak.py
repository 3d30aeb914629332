"""Kill -9 at random points: SIGKILL ``kdbench run`` (or ``kdbench tune``) at TRIALS times drawn from a
seeded generator over the whole of an uninterrupted run, resume each time, and check what is left.

Each trial starts afresh (its own cache and stores), kills the command when its drawn time comes, runs
it again to the end, and checks against the uninterrupted reference run: every combination FINISHED
exactly once and nothing left RUNNING; its metrics and curves equal to the reference's (timings aside);
for ``tune``, every study holding exactly its budget of counted trials, the reference's trials (values,
states, scores, in order), each with exactly one FINISHED run; no temporary file left in the cache; every
checkpoint loading with ``torch.load(weights_only=True)``. Kill times are uniform over the reference's
wall time, start-up included, so some kills land before anything trained (and a kill drawn after the
command ended injects nothing: the count of kills that landed is printed beside the figure). It prints
"N/N survived", or each trial that did not and why, and exits 1 if any did not.

Run: ``python -m tests.benchmarks.bench_kill_soak [run|tune]`` (``TRIALS``, default 20; ``SEED``,
default 0). The suite is the tests' one-epoch digits suite on one thread (``KDBENCH_THREADS=1``), with
the two plugins it needs; no data root is needed.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import TINY_DIGITS

SUITE = TINY_DIGITS.format(name="soak", seeds=1, methods="[student-only, kd]")
TUNE = "tune: {trials: 3, recipe: {lr: {low: 0.01, high: 0.5, log: true}}}\n"
"""Two studies (student-only and kd) of three trials each: a kill can land in either, or in the teacher."""
ENVIRONMENT = {"KDBENCH_THREADS": "1", "KDBENCH_PLUGINS": "vision,methods"}
"""One thread, so every run's metrics are the reference's to the last bit; only the plugins the suite uses."""
CEILING_S = 600.0
"""A run to the end that takes longer has hung: the trial fails rather than the soak waiting forever."""

Launch = Callable[[list[str], Path, float], int]
"""Run ``kdbench ARGS`` in a folder and SIGKILL it after the given seconds (``CEILING_S`` to let it end);
its exit code (-9 when killed)."""


def subprocess_launch(args: list[str], folder: Path, kill_after: float) -> int:
    """``kdbench`` as a user starts it: a new Python process (start-up included in its time)."""
    with open(folder / "log.txt", "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "kdbench.cli", *args], cwd=folder, stdout=log, stderr=log,
                                   env={**_without_tracking(os.environ), **ENVIRONMENT,
                                        "KDBENCH_CACHE": str(folder / "cache")})
        try:
            return process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def fork_launch(args: list[str], folder: Path, kill_after: float) -> int:
    """``kdbench`` in a child forked from this process, which has imported everything once already: the
    same code, killed the same way, without paying the imports each time (the default tests' budget).
    This process must not have opened the child's stores (a forked SQLite connection is not safe)."""
    gc.freeze()  # the child's collections must not write to (and so copy) every page of the parent's objects
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()
    else:  # the child: never returns
        code = 1
        try:
            os.chdir(folder)
            os.environ.update({**ENVIRONMENT, "KDBENCH_CACHE": str(folder / "cache")})
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            log = open(folder / "log.txt", "a", buffering=1)  # noqa: SIM115 - the child's until it exits
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout = sys.stderr = log  # a capturing parent (pytest) may have pointed them elsewhere
            from kdbench.cli import main

            code = main(args)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + kill_after
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@contextmanager
def scratch() -> Iterator[Path]:
    """A folder for the soak's stores and caches, removed after: in memory where the machine has a tmpfs
    (/dev/shm), since a SIGKILL leaves the page cache as it was and the disk's fsyncs would add time, not
    coverage."""
    memory = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="kdbench-kill-soak-", dir=memory if memory.is_dir() else None))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def warm_up(root: Path) -> None:
    """Run the suite once in this process, in a folder of its own, so that children forked from it start
    with everything a run imports already imported (``fork_launch``'s premise)."""
    from kdbench.cli import main

    folder = _prepared(root / "warm-up", "run")
    here, saved = Path.cwd(), {k: os.environ.get(k) for k in (*ENVIRONMENT, "KDBENCH_CACHE")}
    os.environ.update({**ENVIRONMENT, "KDBENCH_CACHE": str(folder / "cache")})
    os.chdir(folder)
    try:
        code = main(_args("run")[:2] + ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"])
    finally:
        os.chdir(here)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if code != 0:
        raise RuntimeError(f"the warm-up run exited {code}")


def _without_tracking(environment: os._Environ[str]) -> dict[str, str]:
    return {k: v for k, v in environment.items() if k != "MLFLOW_TRACKING_URI"}


@dataclass
class Trial:
    number: int
    kill_at: float
    landed: bool = False
    """The kill came while the command ran (else it had ended: nothing was injected)."""
    problems: list[str] = field(default_factory=list)


@dataclass
class Soak:
    command: str
    reference_s: float
    trials: list[Trial]

    @property
    def survived(self) -> int:
        return sum(not t.problems for t in self.trials)

    def report(self) -> str:
        landed = sum(t.landed for t in self.trials)
        lines = [f"{self.survived}/{len(self.trials)} survived (kdbench {self.command}: {landed} kills landed "
                 f"mid-run, drawn over the reference's {self.reference_s:.1f} s)"]
        for trial in self.trials:
            if trial.problems:
                lines.append(f"trial {trial.number} (killed at {trial.kill_at:.2f} s): " + "; ".join(trial.problems))
        return "\n".join(lines)


def soak(command: str, trials: int, seed: int, launch: Launch, root: Path) -> Soak:
    """Run the soak of ``kdbench COMMAND`` (run or tune) under ``root``: the reference, then ``trials`` kills."""
    reference_folder = _prepared(root / "reference", command)
    started = time.perf_counter()
    code = launch(_args(command), reference_folder, CEILING_S)
    reference_s = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the uninterrupted reference run exited {code}: {_tail(reference_folder)}")
    reference = snapshot(command, reference_folder)
    generator = random.Random(seed)
    found = []
    for number in range(1, trials + 1):
        trial = Trial(number, generator.uniform(0.0, reference_s))
        folder = _prepared(root / f"trial-{number}", command)
        code = launch(_args(command), folder, trial.kill_at)
        trial.landed = code == -signal.SIGKILL
        if code not in (0, -signal.SIGKILL):
            trial.problems.append(f"the killed run exited {code} before its kill: {_tail(folder)}")
        code = launch(_args(command), folder, CEILING_S)
        if code != 0:
            trial.problems.append(f"the resumed run exited {code}: {_tail(folder)}")
        else:
            trial.problems += differences(reference, snapshot(command, folder)) + cache_problems(folder / "cache")
        found.append(trial)
    return Soak(command, reference_s, found)


def _prepared(folder: Path, command: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "soak.yaml").write_text(SUITE + (TUNE if command == "tune" else ""))
    return folder


def _args(command: str) -> list[str]:
    return [command, "soak.yaml", "--tracking-uri", "sqlite:///mlflow.db"]


def _tail(folder: Path) -> str:
    log = folder / "log.txt"
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else "(no output)"


def _timing(metric: str) -> bool:
    """Wall-clock measurements differ between any two runs; everything else must not."""
    return "latency" in metric or "wall_time" in metric


def _run_view(client: Any, run: Any) -> dict[str, Any]:
    """A run's status, final metrics and curves (every logged value by step), timings left out."""
    names = [k for k in run.data.metrics if not _timing(k)]
    return {"status": run.info.status,
            "metrics": {k: run.data.metrics[k] for k in names},
            "curves": {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in names}}


def snapshot(command: str, folder: Path) -> dict[str, Any]:
    """What the command left in ``folder``'s stores, in a form two folders can be compared by: the suite's
    runs by key; for tune also each study's trials and the trials' runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")

    def runs(experiment: str) -> list[Any]:
        found = client.get_experiment_by_name(experiment)
        return [] if found is None else client.search_runs([found.experiment_id], max_results=5000)

    suite = runs("soak")
    view: dict[str, Any] = {
        "statuses": sorted(r.info.status for r in suite),
        "finished": {},
    }
    for run in suite:
        key = run.data.tags["kdbench.config_hash"]
        view["finished"].setdefault(key, [])
        if run.info.status == "FINISHED":
            view["finished"][key].append(_run_view(client, run))
    if command == "tune":
        view["studies"] = _studies(folder, client, runs("soak-tune"))
    return view


def _studies(folder: Path, client: Any, tuning_runs: list[Any]) -> dict[str, Any]:
    """Per study: its counted trials in order (state, values, score) with the views of their FINISHED runs,
    and anything that should not be there (a trial still running, a run left RUNNING, a finished run of a
    trial that does not count)."""
    import optuna

    from kdbench.tuning import COUNTED

    storage = f"sqlite:///{folder / 'optuna.db'}"
    trial_runs = [r for r in tuning_runs if r.data.tags.get("kdbench.role") == "trial"]
    studies: dict[str, Any] = {}
    for summary in optuna.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
        stray = [f"trial {t.number} still {t.state.name}" for t in trials if t.state.name in ("RUNNING", "WAITING")]
        counted_trials = []
        for trial in (t for t in trials if t.user_attrs.get(COUNTED)):
            finished = [_run_view(client, r) for r in trial_runs
                        if r.data.tags.get("kdbench.study") == summary.study_name
                        and r.data.tags.get("kdbench.trial") == str(trial.number) and r.info.status == "FINISHED"]
            counted_trials.append({"state": trial.state.name, "params": trial.params, "value": trial.value,
                                   "runs": finished})
        numbers = {str(t.number) for t in trials if t.user_attrs.get(COUNTED)}
        stray += [f"run of trial {r.data.tags.get('kdbench.trial')} left {r.info.status}" for r in trial_runs
                  if r.data.tags.get("kdbench.study") == summary.study_name
                  and (r.info.status == "RUNNING"
                       or (r.info.status == "FINISHED" and r.data.tags.get("kdbench.trial") not in numbers))]
        studies[summary.study_name] = {"counted": counted_trials, "stray": stray}
    return studies


def differences(reference: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Why ``found`` is not the reference: each a short sentence."""
    problems = []
    if "RUNNING" in found["statuses"]:
        problems.append(f"runs left RUNNING: {found['statuses']}")
    if set(found["finished"]) != set(reference["finished"]):
        problems.append(f"{len(found['finished'])} combinations, the reference has {len(reference['finished'])}")
    for key, runs in found["finished"].items():
        if len(runs) != 1:
            problems.append(f"combination {key[:12]} FINISHED {len(runs)} times")
        elif key in reference["finished"]:
            problems += _same_run(f"combination {key[:12]}", reference["finished"][key][0], runs[0])
    if "studies" in reference:
        problems += _same_studies(reference["studies"], found["studies"])
    return problems


def _same_run(what: str, reference: dict[str, Any], found: dict[str, Any]) -> list[str]:
    problems = []
    for part in ("metrics", "curves"):
        changed = sorted(k for k in {*reference[part], *found[part]} if reference[part].get(k) != found[part].get(k))
        if changed:
            problems.append(f"{what}: {part} differ from the uninterrupted run's ({', '.join(changed[:4])})")
    return problems


def _same_studies(reference: dict[str, Any], found: dict[str, Any]) -> list[str]:
    if set(found) != set(reference):
        return [f"studies {sorted(found)}, the reference has {sorted(reference)}"]
    problems = []
    for name, study in found.items():
        expected = reference[name]["counted"]
        problems += [f"study {name[-8:]}: {stray}" for stray in study["stray"]]
        if len(study["counted"]) != len(expected):
            problems.append(f"study {name[-8:]}: {len(study['counted'])} counted trials, the budget is {len(expected)}")
        for position, (want, got) in enumerate(zip(expected, study["counted"], strict=False)):
            what = f"study {name[-8:]}, counted trial {position}"
            if (got["state"], got["params"], got["value"]) != (want["state"], want["params"], want["value"]):
                problems.append(f"{what}: {got['state']} {got['params']} → {got['value']}, the uninterrupted study "
                                f"had {want['state']} {want['params']} → {want['value']}")
            elif len(got["runs"]) != 1:
                problems.append(f"{what}: {len(got['runs'])} FINISHED runs")
            else:
                problems += _same_run(what, want["runs"][0], got["runs"][0])
    return problems


def cache_problems(cache: Path) -> list[str]:
    """A temporary file left in the cache, or a checkpoint that does not load with ``weights_only=True``."""
    import torch

    problems = [f"temporary file left: {p.relative_to(cache)}" for p in cache.rglob(".*.tmp")]
    for checkpoint in sorted(cache.rglob("*.pt")):
        try:
            torch.load(checkpoint, weights_only=True)
        except Exception as error:  # what the check is for: report it, don't stop the soak
            problems.append(f"checkpoint {checkpoint.name} does not load ({type(error).__name__}: {error})")
    return problems


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command not in ("run", "tune"):
        raise SystemExit("usage: python -m tests.benchmarks.bench_kill_soak [run|tune]")
    trials, seed = int(os.environ.get("TRIALS", "20")), int(os.environ.get("SEED", "0"))
    with scratch() as root:
        started = time.perf_counter()
        result = soak(command, trials, seed, subprocess_launch, root)
        print(result.report())
        print(f"({time.perf_counter() - started:.0f} s in all, seed {seed})")
    raise SystemExit(0 if result.survived == len(result.trials) else 1)


if __name__ == "__main__":
    main()
