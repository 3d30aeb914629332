"""What kdbench knows about metric names: which way is better, and how many digits to show.

This is the one place that knowledge lives. A run's ``kdbench.higher_is_better`` tag is
authoritative for its task's primary metric (the task said so); every other metric a
suite may report instead (``metric: errors``), and the model stats, go by name here.
"""

from __future__ import annotations

import re

LOWER_IS_BETTER = frozenset({
    "errors", "error", "nll", "ece", "fid", "latency", "params", "flops", "loss", "mse", "mae",
    "rmse", "distance",
})
"""Words in a metric's name that make a smaller value better: ``test_errors``, ``fid_like``,
``chamfer_distance``, ``latency_ms``. Whole words only: ``fidelity`` is not ``fid``."""

COUNTS = frozenset({"errors"})
"""Metrics that count things: shown with one decimal, as their seed means are not whole."""


def bare(metric: str) -> str:
    """The metric's name without the split prefix the runner adds."""
    for prefix in ("test_", "val_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def higher_is_better(metric: str, primary_metric: str = "",
                     primary_higher: bool | None = None) -> bool:
    """Whether a larger value of ``metric`` is better.

    ``primary_higher`` is the task's own word (the run tag) and applies only when
    ``metric`` is the task's primary metric; otherwise the name decides.
    """
    name = bare(metric)
    if primary_higher is not None and name == bare(primary_metric):
        return primary_higher
    return LOWER_IS_BETTER.isdisjoint(re.split(r"[^a-z0-9]+", name.lower()))


def digits(metric: str) -> int:
    """Decimals to show for a value of ``metric`` (counts need fewer than fractions)."""
    return 1 if bare(metric) in COUNTS else 4
