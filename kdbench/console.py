"""What a person sees while a suite runs: progress bars, then a summary table."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kdbench.plan import Combination
from kdbench.runner import Outcome
from kdbench.runner import Progress as RunnerProgress


class RichProgress(RunnerProgress):
    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self.overall = self.bars.add_task("runs", total=total, status="")
        self.current = None

    def __enter__(self) -> RichProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(*exc)

    def start_run(self, combination: Combination, epochs: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(f"  {combination.label}", total=epochs, status="")

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = next((f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("val_")), "")
        if self.current is not None:
            self.bars.update(self.current, completed=epoch, status=f"loss={metrics['train_loss']:.4f} {shown}")

    def end_run(self, outcome: Outcome) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
            self.current = None
        if outcome.status == "FAILED":
            self.console.print(f"[red]FAILED[/red] {outcome.combination.label}: {outcome.error}", markup=True)
        self.bars.advance(self.overall)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(title: str, table: pd.DataFrame) -> Table:
    out = Table(title=title)
    for column in ("task", "teacher", "student", "method", "test metric", "n"):
        out.add_column(column, justify="right" if column in ("test metric", "n") else "left", no_wrap=True)
    for row in table.itertuples():
        digits = 1 if row.metric == "errors" else 4
        out.add_row(row.task, row.teacher, row.student, row.method,
                    f"{row.metric} {format_mean_std(row.mean, row.std, digits)}", str(row.n))
    return out
