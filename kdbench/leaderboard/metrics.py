"""What the leaderboard knows about a metric: which way is better, and how many decimals to show.

The task's kind declares the direction of every metric its tasks report (``kdbench_kinds``);
a run's ``kdbench.higher_is_better`` tag is authoritative for its task's primary metric (the
task said so), and the model stats are the core's own. Nothing is guessed from a name: a
metric nobody declares is an error, not a coin toss.
"""

from __future__ import annotations

from collections.abc import Mapping

from kdbench.errors import UserError
from kdbench.kind import Kind

MODEL_STATS = ("params", "flops", "latency_ms", "disk_bytes", "zip_bytes", "latency_ms_b64", "latency_ms_all",
               "latency_ms_b64_all")
"""What the runner measures of a model (the batch-64 and all-core latencies in compression suites
only); smaller is better for each."""

def bare(metric: str) -> str:
    """The metric's name without the split prefix the runner adds."""
    for prefix in ("test_", "val_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def higher_is_better(metric: str, kind: str, kinds: Mapping[str, Kind], primary_metric: str = "",
                     primary_higher: bool | None = None) -> bool:
    """Whether a larger value of ``metric``, reported by a task of ``kind``, is better.

    ``primary_higher`` is the task's own word (the run tag) and applies only when ``metric``
    is the task's primary metric; otherwise the declaration in ``kinds[kind]`` decides.
    """
    name = bare(metric)
    if primary_higher is not None and name == bare(primary_metric):
        return primary_higher
    if name in MODEL_STATS:
        return False
    declared = kinds[kind].metric(name) if kind in kinds else None
    if declared is None:
        whose = (f"kind '{kind}' declares no such metric" if kind in kinds
                 else f"kind '{kind}' is declared by no loaded plugin")
        raise UserError(f"metric '{name}' has no declared direction: {whose} (kdbench_kinds)")
    return declared.higher_is_better


def decimals(metric: str, kind: Kind | None) -> int:
    """Decimals to show for a value of ``metric``: its kind's word, else four."""
    declared = kind.metric(bare(metric)) if kind is not None else None
    return declared.decimals if declared is not None else 4


def positive(metric: str, kind: Kind | None) -> bool:
    """Whether ``metric`` is declared strictly positive (its interval is taken on the log scale)."""
    declared = kind.metric(bare(metric)) if kind is not None else None
    return declared is not None and declared.positive
