"""Leaderboard columns for denoising tasks: the Fréchet distance at every step count, mean ± std over seeds.

The core's table reports one metric per row (``fd`` at the task's primary step count, the
teacher's at its own); step distillation is about the whole curve, so each row also shows
``fd n{N}`` for every N its runs were evaluated at, and ``N``, the step count of its ``fd``.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

PER_STEPS = re.compile(r"^test_fd_n(\d+)$")


def fd_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Any] | None:
    counts = sorted(int(m.group(1)) for m in map(PER_STEPS.match, runs.columns) if m)
    if not counts:
        return None
    by_id = runs.set_index("run_id")
    columns: dict[str, list[str]] = {"N": [], **{f"fd n{n}": [] for n in counts}}
    for run_ids in rows["run_ids"]:
        ours = by_id.loc[[r for r in run_ids if r in by_id.index]]
        steps = ours["test_steps"].dropna().unique() if "test_steps" in ours else []
        columns["N"].append(str(int(steps[0])) if len(steps) == 1 else "")
        for n in counts:
            values = ours[f"test_fd_n{n}"].dropna() if len(ours) else pd.Series(dtype=float)
            columns[f"fd n{n}"].append(_spread(values))
    return columns


def _spread(values: pd.Series) -> str:
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.3g}"
    return f"{values.mean():.3g} ± {values.std():.2g}"
