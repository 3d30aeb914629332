"""Run a suite on one thread and write, per run, every metric it logged — or check them against a record.

The method-contract change rewrote how ranking, graph, denoising and multi-model methods are
trained; it had to leave every number where it was. The records beside this file were written
by the code before that change (the commit is inside each), with::

    KDBENCH_DATA=../shared/datasets python -m tests.equality.record suites/smoke.yaml tests/equality/smoke-before.json
    KDBENCH_DATA=../shared/datasets python -m tests.equality.record tests/equality/contract.yaml \
        tests/equality/contract-before.json

and ``test_equality.py`` checks today's code against them. Timings (latency, wall time, ms
per sample) and sizes on disk are left out: they are measured, not computed. ``ALLOWANCES`` lists, per method,
the only differences the change was allowed (renamed or added training curves, and loss
curves now summed in float32); no test metric is among them.

Bit-equality holds only on the machine a record was written on: another CPU's float kernels
(AVX2 against AVX-512, another core count in a reduction) round differently, and training
carries the difference along. Each record names its machine (``machine()``); elsewhere every
metric is compared within ``ACROSS_MACHINES``. Measured between the machine that wrote
``smoke-before.json`` and an AMD EPYC: 26 of its metrics differ, by at most 4.4e-5 relative
(an ECE of 0.0187), none of them an accuracy or error count.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MEASURED = re.compile(r"latency|wall_time|sample_ms|tokens_per_s|disk_bytes|zip_bytes")
"""Metric names that measure the model rather than its training: times, and its size on disk (logged
since the student transforms, after the records were written)."""


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
            found[key] = {name: value for name, value in sorted(run.data.metrics.items()) if not MEASURED.search(name)}
    return found


@dataclass(frozen=True)
class Allowance:
    """What the contract change was allowed to change in one method's runs, and why."""

    why: str
    renamed: dict[str, str] = field(default_factory=dict)
    """Old metric name → new name, the value kept (within ``SUMMED``'s tolerance)."""
    added: frozenset[str] = frozenset()
    """Metrics the old code did not log."""
    resummed: str = r"(?!)"
    """Loss curves whose values were summed in float64 and now are in float32, like every other run's."""


ACROSS_MACHINES = 1e-3
"""Relative tolerance for every metric when the record was written on another machine."""

SUMMED = 1e-6
"""Relative tolerance for a loss curve summed in float32 instead of float64 (a float32 rounds at 6e-8)."""

ALLOWANCES = {
    "consistency": Allowance("step-based training runs in the core's engine, whose run curve is train_loss",
                             renamed={"loss": "train_loss"}),
    "progressive": Allowance("each stage runs in the core's engine: the run's train_loss curve spans the "
                             "stages, and stage losses are summed in float32", added=frozenset({"train_loss"}),
                             resummed=r"stage\d*_loss"),
}
"""Keyed by method variant; nothing else may differ, and no test metric may differ at all."""


def machine() -> str:
    """The CPU and torch build that decide a float's last bits: the same string, the same numbers."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{platform.machine()} {cpu} torch {torch.__version__}"


def tolerance(record: dict) -> float:
    """0 (bit-equal) on the machine that wrote ``record``, ``ACROSS_MACHINES`` anywhere else."""
    return 0.0 if record.get("machine") == machine() else ACROSS_MACHINES


def differences(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                allowances: dict[str, Allowance] | None = None, within: float = 0.0) -> list[str]:
    """One line per run or metric that is missing, new or changed (NaN equals NaN), beyond ``allowances``
    and, for every metric, beyond ``within`` relative (see ``tolerance``)."""
    allowances = ALLOWANCES if allowances is None else allowances
    lines = [f"{key}: run missing" for key in sorted(set(before) - set(after))]
    lines += [f"{key}: run not in the record" for key in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        allowed = allowances.get(key.split("|")[3], Allowance(""))
        old = {allowed.renamed.get(name, name): value for name, value in before[key].items()}
        new = {name: value for name, value in after[key].items() if name not in allowed.added}
        lines += [f"{key}: {name} missing" for name in sorted(set(old) - set(new))]
        lines += [f"{key}: {name} not in the record" for name in sorted(set(new) - set(old))]
        for name in sorted(set(old) & set(new)):
            a, b = old[name], new[name]
            close = name in allowed.renamed.values() or re.fullmatch(allowed.resummed, name)
            if not (a == b or (math.isnan(a) and math.isnan(b)) or (close and math.isclose(a, b, rel_tol=SUMMED))
                    or math.isclose(a, b, rel_tol=within)):
                lines.append(f"{key}: {name} was {a!r}, is {b!r}")
    return lines


def record(suite: Path) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        run_suite(suite, work)
        return metrics_by_run(f"sqlite:///{work / 'mlflow.db'}")


def main(argv: list[str]) -> int:
    if argv[0] == "--check":  # python -m tests.equality.record --check SUITE RECORD: print what differs
        before = json.loads(Path(argv[2]).read_text())
        lines = differences(before["runs"], record(Path(argv[1])), within=tolerance(before))
        print("\n".join(lines) or "every recorded metric is equal")
        return 1 if lines else 0
    suite, out = Path(argv[0]), Path(argv[1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "kdbench", "plugins"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    runs = record(suite)
    suite_name = suite.resolve().relative_to(REPO).as_posix()
    out.write_text(json.dumps({"suite": suite_name, "commit": commit + ("-dirty" if dirty else ""), "threads": 1,
                               "machine": machine(),
                               "command": f"python -m tests.equality.record {suite_name} "
                                          f"{out.resolve().relative_to(REPO).as_posix()}",
                               "runs": runs}, indent=1, sort_keys=True) + "\n")
    print(f"{len(runs)} runs recorded in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
