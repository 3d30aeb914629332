"""Which commit a result names: '-dirty' for changed code, not for published pages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import kdbench.provenance as provenance


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "page.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(provenance, "checkout_root", lambda: tmp_path)
    provenance.git_commit.cache_clear()
    yield tmp_path
    provenance.git_commit.cache_clear()


def head(folder: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()


def test_a_republished_page_leaves_the_commit_clean(checkout: Path) -> None:
    (checkout / "results" / "page.md").write_text("republished\n")
    assert provenance.git_commit() == head(checkout)


def test_changed_code_makes_it_dirty(checkout: Path) -> None:
    (checkout / "code.py").write_text("x = 2\n")
    assert provenance.git_commit() == head(checkout) + "-dirty"
