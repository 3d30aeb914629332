"""Run a suite on one thread and write, per run, every metric it logged — or check them against a record.

The method-contract change rewrote how ranking, graph, denoising and multi-model methods are
trained; it had to leave every number where it was. The records beside this file were written
by the code before that change (the commit is inside each), with::

    KDBENCH_DATA=../shared/datasets python -m tests.equality.record suites/smoke.yaml tests/equality/smoke-before.json
    KDBENCH_DATA=../shared/datasets python -m tests.equality.record tests/equality/contract.yaml \
        tests/equality/contract-before.json

and ``test_equality.py`` checks today's code against them. Timings (latency, wall time, ms
per sample) are left out: they are measured, not computed.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMED = re.compile(r"latency|wall_time|sample_ms")
"""Metric names that hold a measured time."""


def run_suite(suite: Path, work: Path) -> None:
    """``kdbench run`` in ``work`` with its own cache and store, on one thread (the recorded setting)."""
    env = {**os.environ, "KDBENCH_THREADS": "1", "KDBENCH_CACHE": str(work / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "kdbench.cli", "run", str(suite.resolve())], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kdbench run {suite} failed:\n{done.stdout}\n{done.stderr}")


def metrics_by_run(tracking_uri: str) -> dict[str, dict[str, float]]:
    """Every FINISHED run's last value of each computed metric, keyed 'task|teacher|student|variant|seed'."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found: dict[str, dict[str, float]] = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            if run.info.status != "FINISHED" or "kdbench.skipped" in run.data.tags:
                continue
            tags = run.data.tags
            key = "|".join(tags[f"kdbench.{name}"] for name in ("task", "teacher", "student", "variant", "seed"))
            found[key] = {name: value for name, value in sorted(run.data.metrics.items()) if not TIMED.search(name)}
    return found


def differences(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> list[str]:
    """One line per run or metric that is missing, new or changed (NaN equals NaN)."""
    lines = [f"{key}: run missing" for key in sorted(set(before) - set(after))]
    lines += [f"{key}: run not in the record" for key in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        old, new = before[key], after[key]
        lines += [f"{key}: {name} missing" for name in sorted(set(old) - set(new))]
        lines += [f"{key}: {name} not in the record" for name in sorted(set(new) - set(old))]
        for name in sorted(set(old) & set(new)):
            a, b = old[name], new[name]
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                lines.append(f"{key}: {name} was {a!r}, is {b!r}")
    return lines


def record(suite: Path) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        run_suite(suite, work)
        return metrics_by_run(f"sqlite:///{work / 'mlflow.db'}")


def main(argv: list[str]) -> int:
    suite, out = Path(argv[0]), Path(argv[1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "kdbench", "plugins"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    runs = record(suite)
    suite_name = suite.resolve().relative_to(REPO).as_posix()
    out.write_text(json.dumps({"suite": suite_name, "commit": commit + ("-dirty" if dirty else ""), "threads": 1,
                               "command": f"python -m tests.equality.record {suite_name} "
                                          f"{out.resolve().relative_to(REPO).as_posix()}",
                               "runs": runs}, indent=1, sort_keys=True) + "\n")
    print(f"{len(runs)} runs recorded in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
