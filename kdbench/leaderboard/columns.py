"""The columns every rendering shows, how each cell reads, and the footnotes that define them.

The terminal, markdown and HTML tables are drawn from this one list, so a column's
header, its formatting and the rule in the footer cannot drift apart between outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kdbench.leaderboard.aggregate import BASELINE
from kdbench.leaderboard.board import REFERENCE_METHOD, Board
from kdbench.leaderboard.metrics import digits
from kdbench.leaderboard.statistics import ALPHA, CONFIDENCE

NA = "n/a"
BEATS_TEACHER = "†"
SIGNIFICANT = "*"


@dataclass(frozen=True)
class Column:
    key: str
    """The row field the column shows, and sorts by."""
    header: str
    text: Callable[[pd.Series], str]
    numeric: bool = True
    optional: bool = False
    """Hidden when no row has a value (paper anchors, fidelity, plugin columns)."""
    terminal: bool = True
    """Shown in the terminal, where width is scarce and each group is its own table."""
    always: bool = False
    """Filled in rows without a result too (names, status, reason); other cells stay blank."""

    def cell(self, row: pd.Series) -> str:
        return self.text(row) if self.always or row["status"] == "ok" else ""


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, places: int) -> str:
    return NA if missing(value) else f"{value:.{places}f}"


def si(value: Any, small: str = "{:.0f}") -> str:
    """Parameter and FLOP counts in k/M/G, as papers print them; ``small`` formats the rest."""
    if missing(value):
        return NA
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return small.format(value)


def times(value: Any) -> str:
    return NA if missing(value) else f"{value:.1f}×"


def metric_label(row: pd.Series) -> str:
    """'accuracy ↑': the reported metric and which way is better."""
    return f"{row['metric']} {'↑' if row['higher_is_better'] else '↓'}"


def _reproduced(row: pd.Series) -> str:
    if row["status"] != "ok":
        return row["status"]
    places = digits(row["metric"])
    spread = "" if missing(row["std"]) else f" ± {row['std']:.{places}f}"
    return f"{row['mean']:.{places}f}{spread}"


def _ci(row: pd.Series) -> str:
    if missing(row["ci_low"]):
        return NA
    places = digits(row["metric"])
    return f"[{row['ci_low']:.{places}f}, {row['ci_high']:.{places}f}]"


def _gain(row: pd.Series) -> str:
    return "" if missing(row["gain"]) else f"{row['gain']:+.{digits(row['metric'])}f}"


def _gap(row: pd.Series) -> str:
    if row["role"] != "method" or row["status"] != "ok":
        return ""
    value = row["gap_closed"]
    return NA if missing(value) else f"{value:.2f}" + (BEATS_TEACHER if value > 1 else "")


def _p(row: pd.Series) -> str:
    if row["method"] == REFERENCE_METHOD and row["role"] == "method":
        return "ref"
    if row["role"] == "teacher" or row["status"] != "ok":
        return ""
    value = row["p_holm"]
    if missing(value):
        return NA
    shown = "<0.001" if value < 0.001 else f"{value:.3f}"
    return shown + (SIGNIFICANT if value < ALPHA else "")


def _paper(row: pd.Series) -> str:
    return "" if missing(row["paper"]) else number(row["paper"], digits(row["metric"]))


def _rank(row: pd.Series) -> str:
    return "" if missing(row["rank"]) else str(int(row["rank"]))


def _plain(key: str) -> Callable[[pd.Series], str]:
    def text(row: pd.Series) -> str:
        value = row[key]
        if missing(value):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return text


COLUMNS: list[Column] = [
    Column("task", "task", _plain("task"), numeric=False, terminal=False, always=True),
    Column("teacher", "teacher", _plain("teacher"), numeric=False, terminal=False, always=True),
    Column("student", "student", _plain("student"), numeric=False, terminal=False, always=True),
    Column("method", "method", _plain("method"), numeric=False, always=True),
    Column("metric", "metric", metric_label, numeric=False, terminal=False, always=True),
    Column("mean", "reproduced", _reproduced, always=True),
    Column("paper", "paper", _paper, optional=True, always=True),
    Column("n", "n", lambda r: str(r["n"]), always=True),
    Column("ci_low", f"{CONFIDENCE:.0%} CI", _ci, terminal=False),
    Column("gain", "gain", _gain),
    Column("gap_closed", "gap closed", _gap),
    Column("p_holm", "p vs kd", _p),
    Column("fidelity", "fidelity", _plain("fidelity"), optional=True),
    Column("params", "params", lambda r: si(r["params"])),
    Column("flops", "FLOPs", lambda r: si(r["flops"]), terminal=False),
    Column("latency_ms", "latency ms", lambda r: number(r["latency_ms"], 3)),
    Column("compression", "compression", lambda r: times(r["compression"])),
    Column("speedup", "speed-up", lambda r: times(r["speedup"])),
    Column("rank", "rank", _rank),
    Column("reason", "note", _plain("reason"), numeric=False, optional=True, terminal=False,
           always=True),
]


def columns(board: Board, terminal: bool = False) -> list[Column]:
    """The columns to draw: built-ins with a value somewhere, then the plugins' columns."""
    extra = [
        Column(name, name, _plain(name), optional=True,
               numeric=pd.api.types.is_numeric_dtype(board.rows[name]))
        for name in board.extra_columns
    ]
    return [
        column for column in [*COLUMNS, *extra]
        if (column.terminal or not terminal) and not (column.optional and _empty(board, column))
    ]


def _empty(board: Board, column: Column) -> bool:
    if column.key not in board.rows:  # an empty board has no computed columns
        return True
    return bool(board.rows[column.key].map(lambda v: missing(v) or v == "").all())


def checkpoint_rule(board: Board) -> str:
    """Which epoch's weights were tested; every table prints it in its header."""
    names = {"final": "final epoch", "best-val": "best validation epoch (best-val)"}
    rules = [names.get(rule, rule) for rule in board.checkpoints]
    if len(rules) > 1:
        return "MIXED — " + ", ".join(rules) + " (rows are not comparable)"
    return rules[0] if rules else "unknown"


def title(board: Board) -> str:
    return f"{board.suite} — checkpoint: {checkpoint_rule(board)}"


def baseline_names(rows: pd.DataFrame) -> str:
    """The baseline rows' method names, as the footnotes and plots call them."""
    names = sorted(set(rows.loc[rows["role"] == "baseline", "method"])) if not rows.empty else []
    return "', '".join(names) or BASELINE


def footnotes(board: Board) -> list[str]:
    """The definitions a reader needs to trust the numbers, shown under every table."""
    baseline = baseline_names(board.rows)
    notes = [
        f"Checkpoint: {checkpoint_rule(board)}. reproduced = mean ± sample std (ddof 1) over n "
        f"seeds; {CONFIDENCE:.0%} CI from Student's t with n − 1 degrees of freedom. "
        "↑/↓: higher/lower is better.",
        f"Rows 'teacher' and '{baseline}' (the baseline) are the references. Teacher-free methods "
        "(student-only among them) are matched to every pair by (task, student).",
        f"gain = improvement over {baseline} in the metric's units; positive is better for ↑ "
        "and ↓ metrics alike.",
        f"gap closed = (method − {baseline}) / (teacher − {baseline}), both taken in the "
        f"better direction; n/a when the teacher is not ahead of {baseline} by more than the "
        "pooled seed std √((s_teacher² + s_baseline²) / 2) (a single-seed reference counts as 0).",
        f"p vs kd = Welch's two-sided t-test of the method's seeds against plain "
        f"'{REFERENCE_METHOD}', Holm-corrected across the methods of each (task, teacher, "
        f"student) group; {SIGNIFICANT} = p < {ALPHA}; n/a with fewer than 2 seeds on a side, "
        "or no plain kd in the group.",
        "compression = teacher params / params; speed-up = teacher CPU latency / latency "
        "(median single-sample forward); with several teachers, the best-scoring one is the "
        "reference. rank: within the group, teacher excluded.",
    ]
    if board.commits:
        notes.append("Runs were produced by kdbench commit " + ", ".join(board.commits) + ".")
    sources = sorted(set(board.rows.get("paper_source", pd.Series(dtype=str))) - {""})
    if sources:
        notes.append("paper = the value the publication reports: " + "; ".join(sources) + ".")
    if (board.rows.get("gap_closed", pd.Series(dtype=float)) > 1).any():
        notes.append(f"{BEATS_TEACHER} gap closed above 1: the method beats its teacher; "
                     "shown, not clipped.")
    if not board.failures.empty:
        notes.append("Runs that failed or were killed are listed below and are never averaged in.")
    return notes


def cross_task_rows(board: Board) -> list[list[str]]:
    """The cross-task ranking as cells, shared by every rendering."""
    return [
        [str(r.method), number(r.mean_gap_closed, 2), str(r.tasks_with_gap), str(r.tasks),
         "" if missing(r.rank) else str(int(r.rank))]
        for r in board.cross_task.itertuples()
    ]


CROSS_TASK_HEADERS = ["method", "mean gap closed", "tasks with a gap", "tasks tried", "rank"]
CROSS_TASK_RIGHT = [False, True, True, True, True]
CROSS_TASK_NOTE = ("Gap closed averaged over each task's teacher/student pairs, then over tasks; "
                   "tasks tried counts n/a ones too.")


FAILURE_HEADERS = ["task", "teacher", "student", "method", "seed", "status", "reason"]
"""Also the field names: the failures table shows them as they are."""


def failure_rows(board: Board) -> list[list[str]]:
    return [[str(getattr(r, key)) for key in FAILURE_HEADERS] for r in board.failures.itertuples()]
