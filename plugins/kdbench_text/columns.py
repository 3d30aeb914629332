"""The writing speed-up column: how much faster a row's model generates than its teacher.

The core's speed-up compares single-sample forward latency; for a language model what a reader
waits on is generation, one token after another, so the column divides the row's generation
speed (``tokens_per_s``, one stream on one thread) by its teacher's, both means over seeds.
"""

from __future__ import annotations

import pandas as pd

from kdbench import Column

METRIC = "test_tokens_per_s"


def writing_speedup(runs: pd.DataFrame, rows: pd.DataFrame) -> list[tuple[Column, list[str]]] | None:
    if METRIC not in runs or runs[METRIC].dropna().empty:
        return None
    by_id = runs.set_index("run_id")
    teachers = runs[runs["role"] == "teacher"].groupby(["task", "teacher"])[METRIC].mean()
    values = []
    for _, row in rows.iterrows():
        ours = by_id.reindex(list(row["run_ids"]))[METRIC].dropna()
        teacher = teachers.get((row["task"], row["teacher"]))
        values.append(f"{ours.mean() / teacher:.1f}×" if len(ours) and teacher else "")
    column = Column("writing_speedup", "writing speed-up", optional=True,
                    footnote="writing speed-up = the row's tokens/s ÷ its teacher's tokens/s (generation, one stream "
                             "on one CPU thread, means over seeds)")
    return [(column, values)]
