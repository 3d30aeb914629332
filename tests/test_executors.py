"""The process-pool and Ray executors: same runs and metrics as in-process, teachers trained
once, a dead worker's combination retried once and then recorded FAILED."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kdbench.executors.ray_cluster import NODE_TAG
from tests.conftest import write_suite

FAULT_PLUGIN = Path(__file__).with_name("fault_plugin.py")
RECORDING_PLUGIN = Path(__file__).with_name("recording_plugin.py")
SUITE = """
name: parallel
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [student-only, kd, dkd]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
"""


def runs_of(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name("parallel").experiment_id])


def results(uri: str) -> dict[tuple[str, str], dict[str, float]]:
    """Test metrics of every FINISHED run by (method, seed); fails if a key finished twice."""
    table: dict[tuple[str, str], dict[str, float]] = {}
    for run in runs_of(uri):
        if run.info.status == "FINISHED":
            key = (run.data.tags["kdbench.method"], run.data.tags["kdbench.seed"])
            assert key not in table, f"{key} finished twice"
            table[key] = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    return table


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread per worker; workers (which inherit KDBENCH_*) load only the plugins these suites use."""
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    monkeypatch.setenv("KDBENCH_PLUGINS", "vision,methods")


def test_process_pool_matches_in_process_and_trains_each_teacher_once(cli, isolated: Path, one_thread) -> None:
    suite = write_suite(isolated / "parallel.yaml", SUITE)
    store, serial = f"sqlite:///{isolated / 'parallel.db'}", f"sqlite:///{isolated / 'serial.db'}"
    code, _, err = cli("run", suite, "--executor", "process", "--max-parallel", "2", "--tracking-uri", store)
    assert code == 0, err
    parallel = results(store)
    assert len(parallel) == 4
    assert len(list((isolated.parent / "cache" / "teachers").glob("*.pt"))) == 1
    assert [r.data.tags["kdbench.role"] for r in runs_of(store)].count("teacher") == 1, "trained by one job"
    assert not any(NODE_TAG in r.data.tags for r in runs_of(store)), "a Ray node tag only on Ray's runs"

    code, _, err = cli("run", suite, "--tracking-uri", serial)
    assert code == 0, err
    assert results(serial) == parallel  # so the pool is as deterministic as a run in this process


def test_a_dead_worker_is_retried_once_and_one_that_always_dies_is_failed_while_the_suite_goes_on(
        cli, isolated: Path, one_thread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDBENCH_TEST_FAULT", "die-once:kd,die-always:dkd")
    suite = write_suite(isolated / "parallel.yaml", SUITE)
    store = f"sqlite:///{isolated / 'runs.db'}"
    code, out, err = cli("run", suite, "--plugin", FAULT_PLUGIN, "--executor", "process", "--max-parallel", "2",
                         "--tracking-uri", store)
    assert code == 1
    assert "worker died running" in err and "retrying" in err
    assert "worker died 2 times" in out
    runs = runs_of(store)
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert [r.data.tags["kdbench.method"] for r in failed] == ["dkd"]
    assert "worker died 2 times" in failed[0].data.tags["kdbench.error"]
    assert sorted(r.data.tags["kdbench.method"] for r in runs if r.info.status == "FINISHED") == [
        "kd", "student-only", "teacher"]
    # a dead attempt that was retried is marked KILLED (kd's, dkd's first); dkd's last is the FAILED run
    assert sorted(r.data.tags["kdbench.method"] for r in runs if r.info.status == "KILLED") == ["dkd", "kd"]


def test_a_dead_ray_worker_is_retried_once(cli, isolated: Path, one_thread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDBENCH_TEST_FAULT", "die-once:kd")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    suite = write_suite(isolated / "parallel.yaml", SUITE.replace("[student-only, kd, dkd]", "[kd]"))
    store = f"sqlite:///{isolated / 'runs.db'}"
    arguments = ["run", suite, "--plugin", FAULT_PLUGIN, "--executor", "ray", "--max-parallel", "2",
                 "--tracking-uri", store]
    # a driver process of its own, as users run it: Ray started inside pytest is far slower
    done = subprocess.run([sys.executable, "-m", "kdbench.cli", *map(str, arguments)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(FAULT_PLUGIN.parent.parent)})
    assert done.returncode == 0, done.stderr + done.stdout
    assert "worker died running" in done.stderr and "retrying" in done.stderr
    assert len(results(store)) == 2
    killed = [r for r in runs_of(store) if r.info.status == "KILLED"]
    assert [r.data.tags["kdbench.method"] for r in killed] == ["kd"], "the dead attempt is marked KILLED"
    assert len({r.data.tags[NODE_TAG] for r in runs_of(store)}) == 1, "every run tagged with the one local node"


def records(path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """From the recording plugin's file: registry loads per process id, and each run's process by what it trained."""
    loads: dict[str, int] = {}
    ran: dict[str, str] = {}
    for line in path.read_text().splitlines():
        what, pid, *run = line.split(" ")
        if what == "load":
            loads[pid] = loads.get(pid, 0) + 1
        else:
            ran[" ".join(run)] = pid
    return loads, ran


def test_pool_workers_prepare_before_their_first_job_and_run_on_that_plan(cli, isolated: Path, one_thread,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A teacher, then its kd student: one worker at a time is ever busy, so without warming the pool starts
    one worker, when the teacher's job is sent. Warmed, both start at once and load the plugins (building
    their plans) with no job sent; the runs then reuse those plans, loading nothing again."""
    monkeypatch.setenv("KDBENCH_TEST_LOADS", str(isolated / "loads.txt"))
    suite = write_suite(isolated / "parallel.yaml", SUITE.replace("[student-only, kd, dkd]", "[kd]"))
    code, _, err = cli("run", suite, "--plugin", RECORDING_PLUGIN, "--executor", "process", "--max-parallel", "2")
    assert code == 0, err
    loads, ran = records(isolated / "loads.txt")
    workers = {pid: count for pid, count in loads.items() if pid != str(os.getpid())}
    assert len(workers) == 2 and set(workers.values()) == {1}, f"two workers, one load each: {loads}"
    assert set(ran) == {"teacher hinton-mlp-1200", "distill mlp-30"} and set(ran.values()) <= set(workers), ran


def test_closing_the_pool_while_its_workers_prepare_leaves_no_process(isolated: Path, one_thread) -> None:
    """The driver stops before its first job (an error in its plan, nothing left to run): the workers still
    preparing are stopped, not waited for."""
    from kdbench.executors import start_workers

    suite = write_suite(isolated / "parallel.yaml", SUITE)
    workers = start_workers("process", suite, [], 2, f"sqlite:///{isolated / 'runs.db'}", "parallel")
    processes = [w.process for w in workers.backend.idle]
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    workers.close()
    assert not any(p.is_alive() for p in processes)


def test_bad_executor_arguments_are_one_line_errors(cli, tiny_suite) -> None:
    code, _, err = cli("run", tiny_suite(), "--executor", "process", "--max-parallel", "0")
    assert code == 2 and err.count("\n") == 1 and "--max-parallel" in err
    code, _, err = cli("run", tiny_suite(), "--address", "auto")
    assert code == 2 and err.count("\n") == 1 and "--executor ray" in err
