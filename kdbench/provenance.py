"""Which code produced a result: the kdbench version and the git commit of the working tree."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@cache
def kdbench_version() -> str:
    try:
        return version("kdbench")
    except PackageNotFoundError:
        return "unknown"


def checkout_root() -> Path:
    """The folder kdbench runs from: published commands name paths relative to it."""
    return Path(__file__).resolve().parent.parent


PUBLISHED = "results"
"""The checkout's folder of published leaderboards."""


@cache
def git_commit() -> str:
    """The commit of the kdbench checkout, with '-dirty' when it has uncommitted changes — outside
    ``results/``, which holds what ``publish`` writes: a page published is output, not changed code."""
    root = checkout_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){PUBLISHED}"],
            cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")
