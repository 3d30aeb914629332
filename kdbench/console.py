"""What a person sees while a suite runs: progress bars, then a summary table."""

from __future__ import annotations

import pandas as pd
from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from kdbench.estimate import PROBE_BATCHES, PROBE_SECONDS, PlannedRun, makespan
from kdbench.leaderboard.board import Board
from kdbench.leaderboard.columns import (
    CROSS_TASK_HEADERS,
    CROSS_TASK_RIGHT,
    FAILURE_HEADERS,
    checkpoint_rule,
    columns,
    cross_task_rows,
    failure_rows,
    footnotes,
    metric_label,
    title,
    under_trained,
)
from kdbench.plan import Combination
from kdbench.runner import Outcome
from kdbench.runner import Progress as RunnerProgress


class RichProgress(RunnerProgress):
    def __init__(self, console: Console, total: int, live_failures: bool = True) -> None:
        """``live_failures``: print each failed run as it ends; off where the command lists its failures
        at the end, so that each is printed once."""
        self.console = console
        self.live_failures = live_failures
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
            transient=False,
        )
        self.overall = self.bars.add_task("runs", total=total, status="")
        self.current = None
        self.total = 0

    def __enter__(self) -> RichProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(*exc)

    def start_run(self, combination: Combination, epochs: int) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(f"  {combination.label}", total=epochs, status="")
        self.total = epochs

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = next((f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("val_")), "")
        if self.current is not None:
            status = f"loss={metrics['train_loss']:.4f} {shown}"
            self.total = max(self.total, epoch)  # a budget of steps has more rounds than the recipe has epochs
            self.bars.update(self.current, completed=epoch, total=self.total, status=status)

    def end_run(self, outcome: Outcome) -> None:
        if self.current is not None:
            self.bars.remove_task(self.current)
            self.current = None
        if outcome.status == "FAILED" and self.live_failures:
            reason = f" {outcome.combination.label}: {outcome.error}"
            self.console.print(Text.assemble(("FAILED", "red"), reason))
        self.bars.advance(self.overall)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)


WIDTH = 140


def summary_table(board: Board) -> Group:
    """The leaderboard for a terminal: the same columns and rules as the published pages.

    One table per (task, teacher, student) group, named in its title, so the columns
    left are the numbers; those that need width (CI, FLOPs) are left to the pages.
    Print it on a console at least ``WIDTH`` wide, or rich elides numbers. An under-trained
    baseline is named under the title; each paper claim's verdict is a column, its numbers a footnote.
    """
    shown = columns(board, terminal=True)
    parts: list[Table | Text] = [Text(title(board), style="bold")]
    parts += [Text(board.wall_time)] if board.wall_time else []
    parts += [Text(note, style="bold yellow") for note in under_trained(board)]
    for rows in board.groups():
        first = rows.iloc[0]
        heading = (f"{first['task']} · {first['teacher']} → {first['student']} · "
                   f"{metric_label(first)} · checkpoint: {checkpoint_rule(board)}")
        table = _table(heading)
        for column in shown:
            table.add_column(column.header, justify="right" if column.numeric else "left",
                             no_wrap=column.key != "reason")
        for _, row in rows.iterrows():
            table.add_row(*[Text(c.cell(row)) for c in shown], style=_style(row))
        parts.append(table)
        unresolved = rows[rows["status"] != "ok"]
        if not unresolved.empty:
            parts.append(Text("\n".join(f"  {r.method}: {r.status} — {r.reason}"
                                         for r in unresolved.itertuples()) + "\n"))
    if not board.failures.empty:
        parts.append(_plain_table("runs that did not finish", FAILURE_HEADERS, failure_rows(board)))
    if not board.cross_task.empty:
        parts.append(_plain_table(f"across tasks — checkpoint: {checkpoint_rule(board)}",
                                  CROSS_TASK_HEADERS, cross_task_rows(board), CROSS_TASK_RIGHT))
    parts.append(Text("\n".join(f"• {note}" for note in footnotes(board, terminal=True)), style="dim"))
    return Group(*parts)


def _style(row: pd.Series) -> str | None:
    """References in italics, rows without a result dimmed."""
    if row["role"] != "method":
        return "italic"
    return None if row["status"] == "ok" else "dim"


def _table(heading: str) -> Table:
    return Table(title=heading, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True,
                 pad_edge=False)


def _plain_table(name: str, headers: list[str], rows: list[list[str]],
                 right: list[bool] | None = None) -> Table:
    table = _table(name)
    for header, numeric in zip(headers, right or [False] * len(headers), strict=True):
        table.add_column(header, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[Text(cell) for cell in row])
    return table


def plan_table(suite: str, planned: list[PlannedRun], max_parallel: int, uri: str) -> Group:
    """``kdbench plan``: one row per run in the order ``run`` takes them — its state, what it needs
    (a teacher row: whether its checkpoint is cached) and its estimate with where it came from —
    then the totals one after another and with ``max_parallel`` at once."""
    by_key = {p.combination.key: p for p in planned}
    table = _table(f"{suite} — plan: nothing trains, nothing is written")
    for header in ("run", "state", "needs", "estimate", "from"):
        table.add_column(header, justify="right" if header == "estimate" else "left")
    for item in planned:
        combination = item.combination
        if combination.skip_reason is not None:
            state = f"n/a: {combination.skip_reason}"
        else:
            state = "finished" if item.state.done else f"to run: {item.state.why}"
        table.add_row(*[Text(cell) for cell in (combination.label, state, _needs(item, by_key),
                                                  _duration(item.estimate.seconds), item.estimate.source)])
    todo = [p for p in planned if p.runs]
    sources = [p.estimate.source for p in todo if p.combination.skip_reason is None]
    unknown = sum(p.estimate.seconds is None for p in todo)
    serial, parallel = makespan(planned, 1), makespan(planned, max_parallel)
    lines = [
        f"{len(planned)} runs: {len(planned) - len(todo)} finished, {len(todo)} to run "
        f"({sum(p.combination.skip_reason is not None for p in todo)} of them n/a, recorded without training)",
        f"estimated wall time: {_duration(serial)} one after another (kdbench run), {_duration(parallel)} with "
        f"--max-parallel {max_parallel} (each run taken to last as long in a worker as alone)"
        + (f"; {unknown} run(s) not estimated, left out" if unknown else ""),
        f"estimates: {sum(s.startswith('recorded') for s in sources)} from recorded runs (the median wall time per "
        "epoch of finished runs in the store with the same task, role, model, teachers, method, device and recipe "
        f"but its epochs, times this run's epochs), {sources.count('probe')} from probes (the run itself for one "
        f"epoch of at least {PROBE_BATCHES} batches and {PROBE_SECONDS:.0f} s, in a temporary store, scaled to its "
        "recipe's epochs and batches)",
        f"tracking: {uri}, experiment '{suite}'",
    ]
    return Group(table, Text("\n".join(lines)))


def _needs(item: PlannedRun, by_key: dict[str, PlannedRun]) -> str:
    """A teacher row: its checkpoint; a student row: each run it needs, cached or to run first."""
    combination = item.combination
    if combination.role == "teacher":
        if combination.model_spec.pretrained:
            return "pretrained"
        return "checkpoint cached" if item.cached else "no checkpoint yet"
    needs = [(f"teacher {t.model_spec.name}", t) for t in combination.teachers]
    if combination.init is not None:
        needs.append((f"starts from {combination.init.variant}", combination.init))
    return ", ".join(f"{what}: {'cached' if by_key[d.key].state.done else 'runs first'}"
                     if not d.model_spec.pretrained else f"{what}: pretrained" for what, d in needs)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
