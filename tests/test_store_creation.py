"""A store's SQLite file is created with its whole schema or not at all (``tracking.created_whole``): a
kill among MLflow's or Optuna's table-creating statements once left a file every later command refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kdbench.tracking import Tracker, created_whole


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of its own: the tests' working folder is made beside it."""
    made = tmp_path / "stores"
    made.mkdir()
    return made


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {name for (name,) in connection.execute("select name from sqlite_master where type = 'table'")}


def test_a_creation_that_dies_midway_leaves_neither_the_store_nor_its_temporary_file(folder: Path) -> None:
    database = folder / "mlflow.db"

    def half_a_schema(url: str) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("create table experiments (id integer)")
        raise KeyboardInterrupt  # the process stops between two statements

    with pytest.raises(KeyboardInterrupt):
        created_whole(database, half_a_schema)
    assert list(folder.iterdir()) == []
    Tracker(f"sqlite:///{database}", "suite").ensure_experiment()  # the next command makes it whole
    assert {"experiments", "runs", "metrics", "alembic_version"} <= tables(database)
    assert list(folder.iterdir()) == [database]


def test_a_store_made_meanwhile_by_another_process_is_kept(folder: Path) -> None:
    database = folder / "optuna.db"

    def theirs_first(url: str) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("create table mine (id integer)")
        with sqlite3.connect(database) as connection:
            connection.execute("create table theirs (id integer)")

    created_whole(database, theirs_first)
    assert tables(database) == {"theirs"}
    assert list(folder.iterdir()) == [database]


def test_a_dead_creators_temporary_file_is_removed_and_a_live_ones_kept(folder: Path) -> None:
    import os
    import socket

    host = socket.gethostname().replace(".", "-")
    dead = folder / f".mlflow.db.{host}.999999999.x.creating"  # no such pid
    live = folder / f".mlflow.db.{host}.{os.getpid()}.y.creating"
    dead.touch()
    live.touch()
    created_whole(folder / "mlflow.db", lambda url: None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["mlflow.db", live.name])
