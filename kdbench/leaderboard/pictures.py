"""Pictures on the published page: each row's ``pictures/`` artifacts, from one seed.

Tasks draw what a table cannot say (sample grids per sampling-step count, predicted
heatmaps over a camera frame); publishing copies the pictures of every row's lowest seed
that has any next to the page, so a reader compares methods by eye without opening
MLflow, and the same seed across rows wherever the runs have their pictures.
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
    """Copy each row's pictures (its lowest seed with any) into ``folder``; returns (caption, file name) pairs."""
    seeds = dict(zip(board.runs["run_id"], board.runs["seed"], strict=True)) if not board.runs.empty else {}
    shown: list[tuple[str, str]] = []
    for _, row in board.rows.iterrows():
        run_ids = row.get("run_ids")
        if not isinstance(run_ids, list) or not run_ids:
            continue
        seed, pictures = next(((seeds.get(run), found) for run in sorted(run_ids, key=lambda r: seeds.get(r, 0))
                               if (found := fetch(run))), (None, {}))
        for name in sorted(pictures)[:PER_ROW]:
            model = row["teacher"] if row["method"] == "teacher" else row["student"]
            file = "picture-" + "-".join(_slug(part) for part in (row["task"], model, row["method"], name))
            (folder / file).write_bytes(pictures[name])
            who = f"{model} · {row['method']}"
            shown.append((f"{row['task']} · {who} · {name} (seed {seed})", file))
    return shown
