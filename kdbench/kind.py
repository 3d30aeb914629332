"""The kind contract: what a task kind tells the leaderboard, declared by the plugin that owns it.

A task's kind ('classification', 'ranking', ...) is the interface its methods and models
meet it through. The core knows no kind by name: a plugin declares each one through
``kdbench_kinds``, saying which method's rows are its baseline (gain and gap closed are
measured against them), which method significance is tested against, and which way every
metric it reports is better; some of those metrics are shown as leaderboard columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Metric:
    """One metric a kind's tasks report, by its bare name (no ``test_``/``val_`` prefix)."""

    name: str
    """The metric's name, or a shell-style pattern for a family of them (``fd_n*``)."""
    higher_is_better: bool
    label: str = ""
    """Its leaderboard column header; a metric with a label is shown as a column (mean ± std
    over each row's seeds), one without is only known for its direction."""
    description: str = ""
    """The column's footnote: what the metric measures."""
    decimals: int = 4
    """Decimals its values are shown with: a count's seed mean needs fewer than a fraction."""
    positive: bool = False
    """Strictly above 0 (a distance, a time): its confidence interval is taken on the log scale,
    so it cannot reach below 0. Not for a count that may be 0 (errors)."""

    def __post_init__(self) -> None:
        if self.label and any(char in self.name for char in "*?["):
            raise ValueError(f"metric pattern {self.name!r} has a label, but a column shows one metric")

    def matches(self, name: str) -> bool:
        return fnmatchcase(name, self.name)


@dataclass(frozen=True)
class Kind:
    """What a plugin registers through ``kdbench_kinds``."""

    name: str
    baseline: str | None
    """The method whose rows are what a student gets without distillation ('student-only';
    for step distillation, the teacher sampled with N steps)."""
    reference: str | None
    """The method every other is tested against for significance: the kind's plain KD."""
    metrics: tuple[Metric, ...] = ()
    description: str = ""

    def metric(self, name: str) -> Metric | None:
        """The declaration of ``name`` (bare), the first whose name or pattern matches it."""
        return next((metric for metric in self.metrics if metric.matches(name)), None)

    def columns(self) -> tuple[Metric, ...]:
        """The metrics shown as leaderboard columns, in declaration order."""
        return tuple(metric for metric in self.metrics if metric.label)
