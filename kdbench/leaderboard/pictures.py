"""Pictures on the published page: each row's first run's ``pictures/`` artifacts.

Tasks draw what a table cannot say (sample grids per sampling-step count, predicted
heatmaps over a camera frame); publishing copies the first seed's pictures of every row
next to the page, so a reader compares methods by eye without opening MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from kdbench.leaderboard.board import Board

PER_ROW = 4
"""Pictures shown per row: enough to judge, few enough for one page."""

Fetch = Callable[[str], dict[str, bytes]]
"""A run id → its pictures by file name (``Tracker.pictures``)."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


def publish_pictures(board: Board, folder: Path, fetch: Fetch) -> list[tuple[str, str]]:
    """Copy each row's first run's pictures into ``folder``; returns (caption, file name) pairs."""
    shown: list[tuple[str, str]] = []
    for _, row in board.rows.iterrows():
        run_ids = row.get("run_ids")
        if not isinstance(run_ids, list) or not run_ids:
            continue
        pictures = fetch(run_ids[0])
        for name in sorted(pictures)[:PER_ROW]:
            model = row["teacher"] if row["method"] == "teacher" else row["student"]
            file = "picture-" + "-".join(_slug(part) for part in (row["task"], model, row["method"], name))
            (folder / file).write_bytes(pictures[name])
            who = f"{model} · {row['method']}"
            shown.append((f"{row['task']} · {who} · {name} (first seed)", file))
    return shown
