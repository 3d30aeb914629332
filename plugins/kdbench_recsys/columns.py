"""The secondary ranking metrics beside the primary NDCG@10 on the leaderboard.

Full-ranking recall and MRR complete the primary metric; the sampled metrics (the held-out
item against 99 or 499 random negatives, as NCF and DE-RRD report) are shown labelled as
such, because sampled metrics can order methods differently from full ranking (Krichene &
Rendle, KDD 2020) and a reader comparing with those papers needs both.
"""

from __future__ import annotations

import math

import pandas as pd

SECONDARY = {
    "recall@10": "test_recall_10",
    "mrr@10": "test_mrr_10",
    "sampled-99 ndcg@10": "test_sampled99_ndcg_10",
    "sampled-99 hr@10": "test_sampled99_recall_10",
    "sampled-499 ndcg@10": "test_sampled499_ndcg_10",
    "sampled-499 hr@10": "test_sampled499_recall_10",
}
"""Leaderboard column → the logged metric it summarises (hit rate = recall with one held-out item)."""


def secondary_columns(runs: pd.DataFrame, rows: pd.DataFrame) -> dict[str, list[str]] | None:
    """Mean ± sample std over each row's runs, for rows whose runs logged the metric; blank elsewhere."""
    present = {name: metric for name, metric in SECONDARY.items() if metric in runs}
    if not present:
        return None
    by_id = runs.set_index("run_id")
    return {name: [_spread(by_id, run_ids, metric) for run_ids in rows["run_ids"]]
            for name, metric in present.items()}


def _spread(runs: pd.DataFrame, run_ids: list[str], metric: str) -> str:
    values = runs.loc[[r for r in run_ids if r in runs.index], metric].dropna()
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.4f}"
    std = values.std(ddof=1)
    return f"{values.mean():.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")
