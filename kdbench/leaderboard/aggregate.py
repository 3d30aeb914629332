"""From MLflow runs to one row per (task, teacher, student, method): mean ± std over seeds."""

from __future__ import annotations

import pandas as pd

from kdbench.tracking import RunRecord

ROLE_ORDER = {"teacher": 0, "student": 1, "distill": 2}
GROUP = ["task", "teacher", "student", "method"]


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run: its identity tags, status and every final metric."""
    rows = []
    for record in records:
        tags = record.tags
        rows.append({
            "run_id": record.run_id,
            "status": "N/A" if "kdbench.skipped" in tags else record.status,
            "reason": tags.get("kdbench.skipped") or tags.get("kdbench.error", ""),
            "task": tags.get("kdbench.task", "?"),
            "teacher": tags.get("kdbench.teacher", "-"),
            "student": tags.get("kdbench.student", "-"),
            "method": tags.get("kdbench.variant") or tags.get("kdbench.method", "?"),
            "role": tags.get("kdbench.role", "?"),
            "seed": int(tags.get("kdbench.seed", -1)),
            "primary_metric": tags.get("kdbench.primary_metric", ""),
            **record.metrics,
        })
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean, std (ddof 1) and n of the reported test metric per group of finished runs."""
    finished = frame[frame["status"] == "FINISHED"] if not frame.empty else frame
    if finished.empty:
        return pd.DataFrame(columns=[*GROUP, "role", "metric", "mean", "std", "n"])
    rows = []
    for key, group in finished.groupby(GROUP, sort=False):
        name = metric or group["primary_metric"].iloc[0]
        values = group[f"test_{name}"].dropna() if f"test_{name}" in group else pd.Series(dtype=float)
        rows.append({
            **dict(zip(GROUP, key, strict=True)),
            "role": group["role"].iloc[0],
            "metric": name,
            "mean": values.mean(),
            "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
            "n": len(values),
        })
    table = pd.DataFrame(rows)
    table["order"] = table["role"].map(ROLE_ORDER)
    return table.sort_values(["task", "order", "student", "method"]).drop(columns="order").reset_index(drop=True)
