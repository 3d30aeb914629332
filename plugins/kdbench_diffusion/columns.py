"""Leaderboard columns for denoising tasks: the Fréchet distance at every step count, mean ± std over seeds.

The core's table reports one metric per row (``fd`` at the task's primary step count, the
teacher's at its own); step distillation is about the whole curve, so each row also shows
``fd n{N}`` for every N its runs were evaluated at, and ``N``, the step count of its ``fd``,
with KID, the classifier's confidence in the samples and the CPU time per sample at that N.
"""

from __future__ import annotations

import re

import pandas as pd

from kdbench import Column

PER_STEPS = re.compile(r"^test_fd_n(\d+)$")
AT_ROW_STEPS = {
    "kid": ("test_kid_n{}", "KID of the samples"),
    "confidence": ("test_confidence_n{}", "the MNIST classifier's mean top-class probability on the samples"),
    "ms/sample": ("test_sample_ms_n{}", "CPU wall time per sample, batched, on the run's threads"),
}
"""Columns taken at each row's own step count N: the run metric named by the pattern, and what it is."""


def step_counts(runs: pd.DataFrame) -> list[int]:
    """Every sampling-step count some run was evaluated at."""
    return sorted(int(m.group(1)) for m in map(PER_STEPS.match, runs.columns) if m)


def row_runs(by_id: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """The runs (of ``runs`` indexed by run id) averaged into one leaderboard row."""
    return by_id.loc[[r for r in run_ids if r in by_id.index]]


def fd_by_steps(ours: pd.DataFrame, counts: list[int]) -> dict[int, pd.Series]:
    """One row's per-seed Fréchet distances at each of ``counts`` it was evaluated at."""
    found = {n: ours[f"test_fd_n{n}"].dropna() for n in counts}
    return {n: values for n, values in found.items() if not values.empty}


def fd_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[Column, list[str]]] | None:
    counts = step_counts(runs)
    if not counts:
        return None
    by_id = runs.set_index("run_id")
    columns: dict[str, list[str]] = {"N": [], **{f"fd n{n}": [] for n in counts}, **{k: [] for k in AT_ROW_STEPS}}
    notes = {"N": "N = the sampling steps of the row's reported fd (the task's primary count; the teacher's own)",
             f"fd n{counts[0]}": "fd nN = Fréchet distance of the row's samples at N steps, mean ± std over seeds",
             **{name: f"{name} = {what} at the row's N, mean ± std over seeds"
                for name, (_, what) in AT_ROW_STEPS.items()}}
    for run_ids in rows["run_ids"]:
        ours = row_runs(by_id, run_ids)
        steps = ours["test_steps"].dropna().unique() if "test_steps" in ours else []
        own = int(steps[0]) if len(steps) == 1 else None
        columns["N"].append("" if own is None else str(own))
        found = fd_by_steps(ours, counts)
        for n in counts:
            columns[f"fd n{n}"].append(_spread(found.get(n, pd.Series(dtype=float))))
        for name, (pattern, _) in AT_ROW_STEPS.items():
            key = pattern.format(own)
            columns[name].append(_spread(ours[key].dropna()) if own is not None and key in ours else "")
    return [(Column(name, name, optional=True, footnote=notes.get(name, "")), values)
            for name, values in columns.items()]


def _spread(values: pd.Series) -> str:
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.3g}"
    return f"{values.mean():.3g} ± {values.std():.2g}"
