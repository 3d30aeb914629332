"""From MLflow runs to one row per (task, teacher, student, method): the seeds' statistics.

Only FINISHED runs that trained something are averaged. Skipped combinations become n/a
rows with their reason; runs that failed or were killed never enter a mean and are
listed apart, unless a later run of the same config finished (then they are history).
Each row also carries the metrics its task's kind shows as columns, over the same seeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from kdbench.kind import Kind
from kdbench.leaderboard.metrics import MODEL_STATS, decimals, higher_is_better, positive
from kdbench.leaderboard.statistics import spread
from kdbench.tracking import RunRecord

GROUP = ["task", "teacher", "student", "method"]
UNFINISHED = ("FAILED", "KILLED")
TUNING = ("tuned_values", "tuning_val_gain")
"""What a row at tuned values shows of its tuning (the same for each of its seeds)."""


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run: its identity tags, status and every final metric."""
    rows = []
    for record in records:
        tags = record.tags
        higher = tags.get("kdbench.higher_is_better")
        rows.append({
            "run_id": record.run_id,
            "status": "N/A" if "kdbench.skipped" in tags else record.status,
            "reason": tags.get("kdbench.skipped") or tags.get("kdbench.error", ""),
            "task": tags.get("kdbench.task", "?"),
            "kind": tags.get("kdbench.kind", "?"),
            "teacher": tags.get("kdbench.teacher", "-"),
            "student": tags.get("kdbench.student", "-"),
            "method": tags.get("kdbench.variant") or tags.get("kdbench.method", "?"),
            "base_method": tags.get("kdbench.method", "?"),
            "role": tags.get("kdbench.role", "?"),
            "seed": int(tags.get("kdbench.seed", -1)),
            "checkpoint": tags.get("kdbench.checkpoint", "?"),
            "primary_metric": tags.get("kdbench.primary_metric", ""),
            "higher_is_better": None if higher is None else higher == "true",
            "config_hash": tags.get("kdbench.config_hash", record.run_id),
            "commit": tags.get("kdbench.commit", ""),
            "numerics": numerics(record),
            "transform": tags.get("kdbench.transform", ""),
            "transform_backend": tags.get("kdbench.transform_backend", ""),
            "start_time": record.start_time,
            **_tuning(record),
            **record.metrics,
        })
    return pd.DataFrame(rows)


def numerics(record: RunRecord) -> str:
    """Where and how a run computed: its device, precision and kernel mode, from its tag and recipe
    (runs from before devices were recorded all ran on the CPU in fp32)."""
    recipe = "model.recipe." if record.tags.get("kdbench.role") == "teacher" else "student.recipe."
    precision = record.params.get(recipe + "precision", "fp32")
    mode = "deterministic" if record.params.get(recipe + "deterministic") == "True" else "nondeterministic"
    return f"{record.tags.get('kdbench.device', 'cpu')}, {precision}, {mode} kernels"


def _tuning(record: RunRecord) -> dict[str, Any]:
    """A run at tuned values: the values its study chose, and what they gained on val over the defaults
    (in the better direction), from the run's own config."""
    space = record.params.get("tuning.space")
    if space is None or record.tags.get("kdbench.role") == "trial":
        return {}
    params = json.loads(record.tags.get("kdbench.params", "{}"))
    values = {k: record.params.get(f"student.{k}") if k.startswith("recipe.") else params.get(k)
              for k in json.loads(space)}
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={_number(v)}" for k, v in values.items())
    gain = float("nan")
    if record.params.get("tuning.val_defaults") not in (None, "None"):
        sign = 1.0 if record.tags.get("kdbench.higher_is_better") == "true" else -1.0
        gain = sign * (float(record.params["tuning.val"]) - float(record.params["tuning.val_defaults"]))
    return {"tuned_values": shown or "(nothing to search)", "tuning_val_gain": gain}


def _number(text: Any) -> str:
    """A logged parameter (MLflow keeps them as text) as a short number where it is one."""
    try:
        return f"{float(text):.4g}"
    except (TypeError, ValueError):
        return str(text)


def current(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest FINISHED run per config, so one seed is never counted twice."""
    finished = frame[frame["status"].isin(["FINISHED", "N/A"])]
    return finished.sort_values("start_time").drop_duplicates("config_hash", keep="last")


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs that failed or were killed and whose config has no finished run since."""
    columns = [*GROUP, "seed", "status", "reason", "run_id"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    return _unfinished(frame).sort_values([*GROUP, "seed"])[columns].reset_index(drop=True)


def _unfinished(frame: pd.DataFrame) -> pd.DataFrame:
    done = set(frame.loc[frame["status"].isin(["FINISHED", "N/A"]), "config_hash"])
    return frame[frame["status"].isin(UNFINISHED) & ~frame["config_hash"].isin(done)]


def summary(frame: pd.DataFrame, kinds: Mapping[str, Kind], metric: str | None = None) -> pd.DataFrame:
    """Per (task, teacher, student, method): the reported metric's spread over seeds.

    The metric is ``metric`` when the suite sets one, else each run's primary metric; its
    direction is the task's or its kind's word (``metrics.higher_is_better``); a metric its kind
    declares positive gets a log-scale interval (``statistics.spread``).
    Combinations with no usable seed are kept, with status 'n/a' (skipped) or 'failed'
    and the reason, so a method never silently vanishes from the table.
    """
    shown = [] if frame.empty else _shown_metrics(kinds, frame["kind"])
    columns = [*GROUP, "kind", "base_method", "role", "status", "reason", "metric", "higher_is_better", "positive",
               "decimals", "n",
               "mean", "std", "ci_low", "ci_high", "values",
               *[field for name in shown for field in metric_fields(name)], *MODEL_STATS, *TUNING, "run_ids"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    runs = pd.concat([current(frame), _unfinished(frame)])
    rows = []
    for key, group in runs.groupby(GROUP, sort=False):
        trained = group[group["status"] == "FINISHED"]
        first = group.iloc[0]
        name = metric or first["primary_metric"]
        higher = higher_is_better(name, first["kind"], kinds, first["primary_metric"], first["higher_is_better"])
        kind = kinds.get(first["kind"])
        column = f"test_{name}"
        values = trained[column].dropna().tolist() if column in trained else []
        status, reason = "ok", ""
        if trained.empty:
            skipped = group[group["status"] == "N/A"]
            status = "n/a" if not skipped.empty else "failed"
            reason = (skipped if not skipped.empty else group)["reason"].iloc[0]
        elif not values:
            status, reason = "n/a", f"no {column} logged"
        is_positive = positive(name, kind)
        seeds = spread(values, positive=is_positive)
        rows.append({
            **dict(zip(GROUP, key, strict=True)),
            "kind": first["kind"],
            "base_method": first["base_method"],
            "role": first["role"],
            "status": status,
            "reason": reason,
            "metric": name,
            "higher_is_better": higher,
            "positive": is_positive,
            "decimals": decimals(name, kind),
            "n": seeds.n,
            "mean": seeds.mean,
            "std": seeds.std,
            "ci_low": seeds.ci_low,
            "ci_high": seeds.ci_high,
            "values": values,
            **_seed_metrics(trained, kind),
            **{stat: _mean(trained, stat) for stat in MODEL_STATS},
            **{key: trained[key].iloc[0] if key in trained and not trained.empty else None for key in TUNING},
            "run_ids": trained["run_id"].tolist(),
        })
    return pd.DataFrame(rows, columns=columns)


def metric_fields(name: str) -> tuple[str, str]:
    """The row fields of a metric a kind shows as a column: its mean and std over the row's seeds."""
    return f"test_{name}", f"test_{name}_std"


def _shown_metrics(kinds: Mapping[str, Kind], present: pd.Series) -> list[str]:
    """The column metrics of the kinds the runs have, each name once, in declaration order."""
    found = set(present)
    names = [metric.name for name, kind in kinds.items() if name in found for metric in kind.columns()]
    return list(dict.fromkeys(names))


def _seed_metrics(trained: pd.DataFrame, kind: Kind | None) -> dict[str, float]:
    """The kind's column metrics over the same seeds as the reported metric, so a row's columns agree."""
    fields: dict[str, float] = {}
    for metric in kind.columns() if kind is not None else ():
        column = f"test_{metric.name}"
        seeds = spread(trained[column].dropna().tolist() if column in trained else [])
        fields.update(zip(metric_fields(metric.name), (seeds.mean, seeds.std), strict=True))
    return fields


def checkpoints(frame: pd.DataFrame) -> list[str]:
    """The checkpoint rules the runs used; more than one means rows are not comparable."""
    return sorted(set(frame["checkpoint"])) if not frame.empty else []


def _mean(runs: pd.DataFrame, column: str) -> float:
    if column not in runs or runs[column].isna().all():
        return float("nan")
    return float(runs[column].mean())
