"""Pictures on the published page: each row's ``pictures/`` artifacts, from one seed.

Tasks draw what a table cannot say (sample grids per sampling-step count, predicted
heatmaps over a camera frame); publishing copies the pictures of every row's lowest seed
that has any next to the page, so a reader compares methods by eye without opening
MLflow, and the same seed across rows wherever the runs have their pictures. The page's text
samples (``samples``) are chosen by the same rule (``lowest_seed_with_any``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from kdbench.leaderboard.board import Board

PER_ROW = 4
"""Pictures shown per row: enough to judge, few enough for one page."""

Fetch = Callable[[str], dict[str, bytes]]
"""A run id → its pictures by file name (``Tracker.pictures``)."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


T = TypeVar("T")


def row_model(row: pd.Series) -> str:
    """The model a row's runs trained: the teacher on a teacher row, else the student."""
    return row["teacher"] if row["method"] == "teacher" else row["student"]


def lowest_seed_with_any(board: Board, fetch: Callable[[str], Mapping[str, T]]
                         ) -> Iterator[tuple[pd.Series, Any, Mapping[str, T]]]:
    """Each row whose runs have anything to show: the row, the lowest seed whose run's ``fetch`` is
    not empty, and that answer. Lowest, not first logged: a rerun seed 0 comes last but is still shown."""
    seeds = dict(zip(board.runs["run_id"], board.runs["seed"], strict=True)) if not board.runs.empty else {}
    for _, row in board.rows.iterrows():
        run_ids = row.get("run_ids")
        if not isinstance(run_ids, list) or not run_ids:
            continue
        for run in sorted(run_ids, key=lambda r: seeds.get(r, 0)):
            if found := fetch(run):
                yield row, seeds.get(run), found
                break


def publish_pictures(board: Board, folder: Path, fetch: Fetch) -> list[tuple[str, str]]:
    """Copy each row's pictures (its lowest seed with any) into ``folder``; returns (caption, file name) pairs."""
    shown: list[tuple[str, str]] = []
    for row, seed, pictures in lowest_seed_with_any(board, fetch):
        model = row_model(row)
        for name in sorted(pictures)[:PER_ROW]:
            file = "picture-" + "-".join(_slug(part) for part in (row["task"], model, row["method"], name))
            (folder / file).write_bytes(pictures[name])
            shown.append((f"{row['task']} · {model} · {row['method']} · {name} (seed {seed})", file))
    return shown
