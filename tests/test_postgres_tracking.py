"""MLflow on PostgreSQL, as a cluster's users run it: an `mlflow server` on a PostgreSQL database with its artifacts
on disk, two process-pool workers running a `kdbench tune` study's trials at once, the study's Optuna storage a
schema of the same database. And the README's copy-pasteable block for that setup (a run, then a study), as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.postgres import Postgres, as_server_user, binaries, postgres_server, unavailable  # noqa: F401 - a fixture
from tests.test_mlflow_server import free_port, mlflow_server_on, stop_session

REPO = Path(__file__).resolve().parent.parent


def optuna_storage(postgres: Postgres, database: str) -> str:
    """Optuna's storage in schema ``optuna`` of ``database``: MLflow and Optuna both keep their schema version in an
    ``alembic_version`` table, so in one schema each would read the other's."""
    postgres.execute(database, "CREATE SCHEMA optuna")
    return postgres.url(database) + "?options=-csearch_path%3Doptuna"


@pytest.mark.server
def test_two_workers_tuning_at_once_share_one_postgres_database_through_an_mlflow_server(
        postgres: Postgres, cli, tiny_suite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two process-pool workers run a `kdbench tune` study's trials side by side: both log to MLflow through the
    server and report to Optuna directly, the driver asks and tells the study, all in one PostgreSQL database."""
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    monkeypatch.setenv("KDBENCH_PLUGINS", "vision,methods")
    database = postgres.new_database()
    storage = optuna_storage(postgres, database)
    artifacts = tmp_path / "artifacts"
    with mlflow_server_on(postgres.url(database), artifacts, tmp_path / "server.log") as server:
        code, out, err = cli("tune", tiny_suite(methods="[kd]"), "--trials", "2", "--executor", "process",
                             "--max-parallel", "2", "--tracking-uri", server, "--storage", storage)
        assert code == 0, err + out
        client = MlflowClient(tracking_uri=server)
        teachers = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
        trials = [r for r in client.search_runs([client.get_experiment_by_name("tiny-tune").experiment_id])
                  if "mlflow.parentRunId" in r.data.tags]  # the study's parent run aside
        for run in teachers + trials:  # uploaded through the server to its disk
            assert (artifacts / run.info.experiment_id / run.info.run_id / "artifacts" / "config.json").is_file()

    assert [(r.data.tags["kdbench.role"], r.info.status) for r in teachers] == [("teacher", "FINISHED")]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert f"studies: {storage}" in out
    # what the database holds: MLflow's tables in its public schema, the study in schema optuna
    rows = postgres.execute(database, "SELECT e.name, count(*) FROM runs r JOIN experiments e USING (experiment_id) "
                                      "WHERE r.status = 'FINISHED' GROUP BY e.name ORDER BY e.name")
    assert rows == [("tiny", 1), ("tiny-tune", 2)]
    studies = postgres.execute(database, "SELECT s.study_name, t.state, count(*) FROM optuna.studies s "
                                         "JOIN optuna.trials t USING (study_id) GROUP BY s.study_name, t.state")
    assert [(state, count) for _, state, count in studies] == [("COMPLETE", 2)], studies
    schemas = postgres.execute(database, "SELECT table_name, table_schema FROM information_schema.tables "
                                         "WHERE table_name IN ('runs', 'trials', 'alembic_version') ORDER BY 1, 2")
    assert schemas == [("alembic_version", "optuna"), ("alembic_version", "public"), ("runs", "public"),
                       ("trials", "optuna")]


def readme_block() -> str:
    found = re.search(r"<!-- postgres-setup -->\n```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert found, "the README's cluster section shows the PostgreSQL setup"
    return found.group(1)


@pytest.mark.slow
@pytest.mark.server
def test_the_readmes_postgres_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block, in a folder of its own, with two free ports for its fixed ones; under root, `initdb` and `pg_ctl`
    are shims that run them as the `postgres` user (PostgreSQL refuses root). Everything it starts is stopped."""
    if binaries() is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    monkeypatch.setenv("KDBENCH_THREADS", "1")
    block = readme_block()
    assert "PGPORT=5433" in block and "--port 5000" in block
    block = block.replace("5433", str(free_port())).replace("5000", str(free_port()))
    work = Path(tempfile.mkdtemp(prefix="kdreadme"))  # not under pytest's root-only tmp_path: the server user writes
    work.chmod(0o777)
    shims = tmp_path / "shims"
    shims.mkdir()
    for program in ("initdb", "pg_ctl"):
        shim = shims / program
        shim.write_text(f'#!/bin/sh\nexec {" ".join(as_server_user([str(binaries() / program)]))} "$@"\n')
        shim.chmod(0o755)
    log = tmp_path / "block.log"
    with log.open("w") as output:
        shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=work, stdout=output,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}",
                                      "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # as mlflow_server_on
    try:
        code = shell.wait(timeout=1500)
        artifacts = len(list((work / "mlartifacts").rglob("config.json")))
    finally:
        left = stop_session(shell)
        if (work / "kdbench-pg" / "postmaster.pid").exists():  # the block failed before its own pg_ctl stop
            subprocess.run(as_server_user([str(binaries() / "pg_ctl"), "--pgdata", str(work / "kdbench-pg"),
                                           "--mode", "immediate", "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert not left, f"the block left processes running: {left}"
    assert "9 finished, 0 failed" in text, text[-4000:]
    assert re.search(r"studies: postgresql\+psycopg://\S+options=-csearch_path%3Doptuna", text), text[-4000:]
    assert artifacts == 9 + 2 * 2, "every run and trial uploaded its config.json to the server's disk"
