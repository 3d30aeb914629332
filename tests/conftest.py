"""Shared fixtures: every test gets its own working directory, cache and MLflow store, and the built-in plugins only.

Dataset-backed tests ask for ``require_data(name, *files)``: without the files they are
skipped with a reason, except under ``KDBENCH_REQUIRE_DATA=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
_BUILT_INS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["kdbench"]
BUILT_IN_PLUGINS = ",".join(f"{name}={module}" for name, module in _BUILT_INS.items())
"""``KDBENCH_LOAD_PLUGINS`` for the built-in plugins, read from pyproject.toml so that a new one needs no edit here."""


def _threads_per_worker() -> int:
    """The machine's cores shared among pytest-xdist's workers: more threads than cores is slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    return max(1, (os.cpu_count() or 2) // workers)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory with its own cache, default MLflow store, and the built-in plugins only: an installed
    third-party plugin must not change what a test sees (``entry_point_plugins`` lets a test ask for them)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KDBENCH_PLUGINS", raising=False)
    monkeypatch.setenv("KDBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("KDBENCH_LOAD_PLUGINS", BUILT_IN_PLUGINS)
    torch.set_num_threads(int(os.environ.get("KDBENCH_THREADS", _threads_per_worker())))
    return work


@pytest.fixture
def entry_point_plugins(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load plugins through the installed entry points, as a user's process does."""
    monkeypatch.delenv("KDBENCH_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.delenv("KDBENCH_LOAD_PLUGINS")


@pytest.fixture
def require_data():
    """Skip (or, under KDBENCH_REQUIRE_DATA=1, fail) when a dataset's files are absent."""

    def check(dataset: str, *files: str) -> Path:
        from kdbench.data_root import data_root

        root = data_root() / dataset
        missing = [f for f in files if not (root / f).is_file()] if files else ([] if root.is_dir() else [root])
        if missing:
            message = f"dataset '{dataset}' not under {data_root()} (missing {missing[0]}); set KDBENCH_DATA"
            if os.environ.get("KDBENCH_REQUIRE_DATA") == "1":
                pytest.fail(message)
            pytest.skip(message)
        return root

    return check


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the ``kdbench`` command in-process; returns (exit code, stdout, stderr)."""
    from kdbench.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_suite(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TINY_DIGITS = """
name: {name}
seeds: {seeds}
tasks: [digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: {methods}
recipe:
  teacher: {{epochs: 1}}
  student: {{epochs: 1}}
"""


@pytest.fixture
def tiny_suite(isolated: Path):
    """A one-epoch digits suite file; methods and seeds are parameters."""

    def make(name: str = "tiny", methods: str = "[student-only, kd]", seeds: int = 1) -> Path:
        return write_suite(isolated / f"{name}.yaml", TINY_DIGITS.format(name=name, methods=methods, seeds=seeds))

    return make
