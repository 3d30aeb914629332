"""Nothing lost, nothing doubled: SIGKILL the runner at chosen points, then run the suite again.

Each trial kills a real ``kdbench run`` process (through tests/fault_plugin.py) and resumes
in a fresh one. At the end every combination must have exactly one FINISHED run, with
the same metrics as an uninterrupted run of the same seed; the interrupted run must be
marked KILLED, and the teacher cache must hold only complete checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import write_suite

FAULT_PLUGIN = Path(__file__).with_name("fault_plugin.py")
SUITE = """
name: crash
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [student-only, kd]
recipe:
  teacher: {epochs: 2}
  student: {epochs: 2}
"""
TRIALS = ["teacher-epoch", "student-epoch", "between-runs", "metrics-logging", "cache-write"]
_reference: dict[str, dict[str, float]] = {}


def finished_metrics(uri: str) -> tuple[dict[str, dict[str, float]], list[tuple[str, str]]]:
    """(test metrics of the FINISHED run per method, [(method, status)] of every run)."""
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    statuses = sorted((r.data.tags["kdbench.method"], r.info.status) for r in runs)
    metrics = {r.data.tags["kdbench.method"]: {k: v for k, v in r.data.metrics.items() if k.startswith("test_")}
               for r in runs if r.info.status == "FINISHED"}
    return metrics, statuses


def reference(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, float]]:
    """The uninterrupted run's metrics (computed once per session, one thread like the trials)."""
    if not _reference:
        monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "reference-cache"))
        uri = f"sqlite:///{tmp_path / 'reference.db'}"
        code, _, err = cli("run", write_suite(tmp_path / "crash.yaml", SUITE), "--tracking-uri", uri)
        assert code == 0, err
        _reference.update(finished_metrics(uri)[0])
    return _reference


@pytest.mark.parametrize("fault", TRIALS)
def test_sigkill_then_resume_loses_and_doubles_nothing(fault: str, cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    monkeypatch.setenv("KDBENCH_PLUGINS", "vision,methods")  # the killed process starts faster
    expected = reference(cli, tmp_path, monkeypatch)
    cache = tmp_path / "trial-cache"
    monkeypatch.setenv("KDBENCH_CACHE", str(cache))
    suite = write_suite(tmp_path / "crash.yaml", SUITE)
    uri = f"sqlite:///{tmp_path / 'trial.db'}"
    environment = {**os.environ, "KDBENCH_TEST_FAULT": fault, "PYTHONPATH": str(FAULT_PLUGIN.parent.parent)}
    killed = subprocess.run([sys.executable, "-m", "kdbench.cli", "run", str(suite), "--plugin", str(FAULT_PLUGIN),
                             "--tracking-uri", uri], env=environment, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, f"the fault did not fire: {killed.stderr[-2000:]}"
    if fault == "cache-write":
        assert list((cache / "teachers").glob(".*.tmp")), "the kill should have left a temporary file"
        assert not list((cache / "teachers").glob("*.pt"))

    code, _, err = cli("run", suite, "--tracking-uri", uri)
    assert code == 0, err
    metrics, statuses = finished_metrics(uri)
    finished = [method for method, status in statuses if status == "FINISHED"]
    assert sorted(finished) == ["kd", "student-only", "teacher"], "each combination exactly once"
    assert "RUNNING" not in {status for _, status in statuses}
    if fault != "between-runs":
        assert [status for _, status in statuses].count("KILLED") == 1, statuses
    assert metrics == expected
    assert not list((cache / "teachers").glob(".*.tmp")), "a partial checkpoint survived"
    for checkpoint in (cache / "teachers").glob("*.pt"):
        assert torch.load(checkpoint, weights_only=True)
