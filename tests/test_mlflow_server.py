"""Tracking against a real `mlflow server` over HTTP, and a clear error when none answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_alive(session: int) -> list[int]:
    """The live (not zombie) processes of ``session``: a server's own children, and theirs, whatever their group."""
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def stop_session(process: subprocess.Popen, grace: float = 5.0) -> list[int]:
    """SIGTERM every process of the session ``process`` leads (started with ``start_new_session``), then SIGKILL
    what is left: a server's workers too, which killing the process alone leaves running. Returns the pids that
    outlived both (none, unless something is wrong)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_alive(process.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while session_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    process.wait(timeout=30)
    return session_alive(process.pid)


@contextmanager
def mlflow_server_on(backend: str, artifacts: Path, log: Path) -> Iterator[str]:
    """`mlflow server` on the ``backend`` store, its artifacts uploaded through it to ``artifacts`` (as a cluster's
    workers, which cannot write to the server's disk, send them); its URI, and everything it started stopped after."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--artifacts-destination",
             str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # its GenAI job runner: unused
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # its imports alone take 30 s on a busy 2-core machine
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"mlflow server did not start within 120 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        left = stop_session(process)
        assert not left, f"mlflow server's processes outlived it: {left}"


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    store = f"sqlite:///{tmp_path / 'server.db'}"
    with mlflow_server_on(store, tmp_path / "artifacts", tmp_path / "server.log") as uri:
        yield uri


@pytest.mark.server
def test_suite_runs_against_a_real_tracking_server(mlflow_server: str, cli, tiny_suite, isolated: Path):
    code, out, err = cli("run", tiny_suite(methods="[student-only, kd]"), "--tracking-uri", mlflow_server)
    assert code == 0, err
    assert not (isolated / "mlflow.db").exists(), "nothing may go to the embedded store"
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["kdbench.role"] for r in runs) == ["distill", "student", "teacher"]
    assert all(r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics for r in runs)
    for run in runs:
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["config.json"]
    # resume works over HTTP too
    code, _, err = cli("run", tiny_suite(methods="[student-only, kd]"), "--tracking-uri", mlflow_server)
    assert code == 0 and "3/3 runs already finished, skipped" in err


@pytest.mark.server
def test_two_parallel_workers_log_every_run_and_artifact_to_the_server(mlflow_server: str, cli, tiny_suite,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    code, _, err = cli("run", tiny_suite(methods="[student-only, kd, dkd]", seeds=2), "--executor", "process",
                       "--max-parallel", "2", "--tracking-uri", mlflow_server)
    assert code == 0, err
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["kdbench.config_hash"] for r in runs}) == 8
    for run in runs:
        assert "test_accuracy" in run.data.metrics and "wall_time_s" in run.data.metrics
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.json"]
        assert client.get_metric_history(run.info.run_id, "train_loss"), "per-epoch curves arrive too"


def test_unreachable_server_is_one_line_before_any_training(cli, tiny_suite, isolated: Path):
    started = time.monotonic()
    code, out, err = cli("run", tiny_suite(), "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert code == 2
    assert time.monotonic() - started < 10
    assert err.count("\n") == 1 and "is unreachable" in err
    teachers = isolated.parent / "cache" / "teachers"
    assert not teachers.exists() or not any(teachers.iterdir())
