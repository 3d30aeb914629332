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


def step_counts(runs: pd.DataFrame) -> list[int]:
    """Every sampling-step count some run was evaluated at."""
    return sorted(int(m.group(1)) for m in map(PER_STEPS.match, runs.columns) if m)


def fd_by_steps(runs: pd.DataFrame, run_ids: list[str]) -> dict[int, pd.Series]:
    """One leaderboard row's per-seed Fréchet distances at each step count it was evaluated at."""
    by_id = runs.set_index("run_id")
    ours = by_id.loc[[r for r in run_ids if r in by_id.index]]
    found = {n: ours[f"test_fd_n{n}"].dropna() for n in step_counts(runs)}
    return {n: values for n, values in found.items() if not values.empty}


def fd_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, Any] | None:
    counts = step_counts(runs)
    if not counts:
        return None
    by_id = runs.set_index("run_id")
    columns: dict[str, list[str]] = {"N": [], **{f"fd n{n}": [] for n in counts}}
    for run_ids in rows["run_ids"]:
        ours = by_id.loc[[r for r in run_ids if r in by_id.index]]
        steps = ours["test_steps"].dropna().unique() if "test_steps" in ours else []
        columns["N"].append(str(int(steps[0])) if len(steps) == 1 else "")
        found = fd_by_steps(runs, run_ids)
        for n in counts:
            columns[f"fd n{n}"].append(_spread(found.get(n, pd.Series(dtype=float))))
    return columns


def _spread(values: pd.Series) -> str:
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.3g}"
    return f"{values.mean():.3g} ± {values.std():.2g}"
