"""A PostgreSQL server for the tests: Debian's `postgresql` programs, a cluster of its own in a temporary folder,
listening on a free loopback port, for the whole session.

A test module imports ``postgres_server`` to offer the ``postgres`` fixture. Where PostgreSQL (or psycopg) is
missing the tests that ask for it are skipped with the reason, except
under ``KDBENCH_REQUIRE_POSTGRES=1`` (``.ci/run`` installs it and sets that), where they fail. PostgreSQL refuses to
run as root, so under root its server programs run as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_mlflow_server import free_port

REQUIRE = "KDBENCH_REQUIRE_POSTGRES"
SERVER_USER = "postgres"
"""Who runs PostgreSQL's server programs when the tests run as root."""


def unavailable(reason: str) -> None:
    """Skip, or under ``KDBENCH_REQUIRE_POSTGRES=1`` fail, with ``reason``."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1)")
    pytest.skip(reason)


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian keeps them off PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parent.parent.name.zfill(8))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def as_server_user(argv: list[str]) -> list[str]:
    """``argv`` as PostgreSQL's server programs must run: as ourselves, or as ``postgres`` when we are root."""
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    _names = itertools.count()

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (MLflow's and Optuna's form) of ``database``; trust authentication, no password."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, database: str, sql: str) -> list[tuple]:
        """Run ``sql`` in ``database`` (autocommit: CREATE DATABASE cannot run in a transaction); its rows, if any."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=database,
                             autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        """A fresh, empty database's name: each test gets its own, so none sees another's runs."""
        name = f"kdbench_{os.getpid()}_{next(self._names)}"
        self.execute("postgres", f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session", name="postgres")
def postgres_server() -> Iterator[Postgres]:
    """PostgreSQL initialised (``initdb``) and started (``pg_ctl``) in a temporary folder on a free loopback port,
    reachable over TCP only, stopped and deleted at the end of the session."""
    folder = binaries()
    if folder is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401 - MLflow's and Optuna's driver
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[test]')")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            unavailable(f"running as root, and there is no '{SERVER_USER}' user to run PostgreSQL as")
    # not under pytest's tmp_path: that is private to root, and the server user must write here
    root = Path(tempfile.mkdtemp(prefix="kdpg"))
    root.chmod(0o777)
    data, log, port = root / "data", root / "server.log", free_port()

    def run(*argv: str) -> None:
        done = subprocess.run(as_server_user([str(folder / argv[0]), *argv[1:]]), capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{argv[0]} failed: {(done.stderr or done.stdout)[-2000:]}")

    try:
        run("initdb", "--pgdata", str(data), "--username", "kdbench", "--auth", "trust", "--encoding", "UTF8",
            "--no-sync")
        # a test database: no fsync, and sockets in its own folder, never the system's /var/run/postgresql
        run("pg_ctl", "--pgdata", str(data), "--log", str(log), "--wait", "--options",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off", "start")
        yield Postgres("127.0.0.1", port, "kdbench")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(as_server_user([str(folder / "pg_ctl"), "--pgdata", str(data), "--mode", "immediate",
                                           "--wait", "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
