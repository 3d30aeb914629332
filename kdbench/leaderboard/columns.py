"""The columns every rendering shows, how each cell reads, and the footnotes that define them.

The terminal, markdown and HTML tables are drawn from this one list, so a column's
header, its formatting and the rule in the footer cannot drift apart between outputs.
The metric columns a task kind declares and the columns plugins add are ``Column``s too,
drawn by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from kdbench.kind import Kind, Metric
from kdbench.leaderboard.aggregate import metric_fields
from kdbench.leaderboard.column import Column, missing, plain
from kdbench.leaderboard.statistics import ALPHA, CONFIDENCE, LAST_EPOCHS

if TYPE_CHECKING:
    from kdbench.leaderboard.board import Board

NA = "n/a"
BEATS_TEACHER = "†"
SIGNIFICANT = "*"


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
    places = row["decimals"]
    spread = "" if missing(row["std"]) else f" ± {row['std']:.{places}f}"
    return f"{row['mean']:.{places}f}{spread}"


def _ci(row: pd.Series) -> str:
    if missing(row["ci_low"]):
        return NA
    places = row["decimals"]
    return f"[{row['ci_low']:.{places}f}, {row['ci_high']:.{places}f}]"


def _gain(row: pd.Series) -> str:
    return "" if missing(row["gain"]) else f"{row['gain']:+.{row['decimals']}f}"


def _gap(row: pd.Series) -> str:
    if row["role"] != "method" or row["status"] != "ok":
        return ""
    value = row["gap_closed"]
    return NA if missing(value) else f"{value:.2f}" + (BEATS_TEACHER if value > 1 else "")


def _p(row: pd.Series) -> str:
    if row["method"] == row["reference"] and row["role"] == "method":
        return "ref"
    if row["role"] == "teacher" or row["status"] != "ok":
        return ""
    value = row["p_holm"]
    if missing(value):
        return NA
    shown = "<0.001" if value < 0.001 else f"{value:.3f}"
    return shown + (SIGNIFICANT if value < ALPHA else "")


def _beats(row: pd.Series) -> str:
    value = row["beats_reference"]
    return "" if missing(value) else ("yes" if value else "no")


def _paper(row: pd.Series) -> str:
    return "" if missing(row["paper"]) else number(row["paper"], row["decimals"])


def _slope(row: pd.Series) -> str:
    """Signed, in the metric's units per epoch: '+0.0031' for an accuracy still rising."""
    return "" if missing(row["val_slope"]) else f"{row['val_slope']:+.3g}"


def _rank(row: pd.Series) -> str:
    return "" if missing(row["rank"]) else str(int(row["rank"]))


COLUMNS: list[Column] = [
    Column("task", "task", plain("task"), numeric=False, terminal=False, always=True),
    Column("teacher", "teacher", plain("teacher"), numeric=False, terminal=False, always=True),
    Column("student", "student", plain("student"), numeric=False, terminal=False, always=True),
    Column("method", "method", plain("method"), numeric=False, always=True),
    Column("metric", "metric", metric_label, numeric=False, terminal=False, always=True),
    Column("mean", "reproduced", _reproduced, always=True),
    Column("paper", "paper", _paper, optional=True, always=True),
    Column("verdict", "verdict", plain("verdict"), numeric=False, optional=True, always=True,
           footnote="verdict = whether the claim the suite's paper anchor makes for the row holds (all of "
                    "its tolerances: within, better-than, gap closed; each claim is listed below); untested "
                    "when a number it needs is missing"),
    Column("n", "n", lambda r: str(r["n"]), always=True),
    Column("ci_low", f"{CONFIDENCE:.0%} CI", _ci, terminal=False),
    Column("val_slope", "val slope/epoch", _slope, optional=True, terminal=False,
           footnote=f"val slope/epoch = least-squares slope of the reported metric on validation over "
                    f"each run's last {LAST_EPOCHS} logged epochs, in its units per epoch, mean over the "
                    "row's seeds: how far from converged the row was stopped"),
    Column("gain", "gain", _gain),
    Column("gap_closed", "gap closed", _gap),
    Column("p_holm", "p vs ref", _p),
    Column("beats_reference", "beats ref by > 1 std", _beats, numeric=False, terminal=False,
           footnote="beats ref by > 1 std = whether the row's mean is better than the reference row's (marked "
                    "'ref') by more than that row's seed std: a plain reading beside the test, not a test"),
    Column("tuned_values", "tuned values", numeric=False, optional=True, terminal=False,
           footnote="tuned values = what the method's study chose, on val, for every seed of the row"),
    Column("tuning_val_gain", "tuning Δval",
           # in the study's score, the task's primary metric, which need not be the table's: 3 figures
           lambda r: "" if missing(r["tuning_val_gain"]) else f"{r['tuning_val_gain']:+.3g}",
           optional=True, footnote="tuning Δval = the chosen values' validation score (the task's primary "
                                   "metric, which the studies maximise or minimise) over the paper defaults' "
                                   "(trial 0), in the better direction"),
    Column("params", "params", lambda r: si(r["params"])),
    Column("flops", "FLOPs", lambda r: si(r["flops"]), terminal=False),
    Column("latency_ms", "latency ms", lambda r: number(r["latency_ms"], 3)),
    Column("latency_ms_b64", "latency ms b64", lambda r: number(r["latency_ms_b64"], 3), optional=True,
           footnote="latency ms b64 = median forward of a batch of 64 test samples on one thread; "
                    "all cores = the same on every core of the machine (with the process pool, beside the "
                    "other workers' runs): a compression suite's deployed view"),
    Column("latency_ms_all", "latency ms all cores", lambda r: number(r["latency_ms_all"], 3), optional=True),
    Column("latency_ms_b64_all", "latency ms b64 all cores", lambda r: number(r["latency_ms_b64_all"], 3),
           optional=True),
    Column("disk_bytes", "bytes", lambda r: si(r["disk_bytes"]), optional=True, terminal=False,
           footnote="bytes = the saved state dict (torch.save); zipped = the same deflate-compressed"),
    Column("zip_bytes", "zipped", lambda r: si(r["zip_bytes"]), optional=True, terminal=False),
    Column("compression", "compression", lambda r: times(r["compression"])),
    Column("speedup", "speed-up", lambda r: times(r["speedup"])),
    Column("rank", "rank", _rank),
    Column("reason", "note", plain("reason"), numeric=False, optional=True, terminal=False,
           always=True),
]


KIND_COLUMNS_AFTER = next(i for i, column in enumerate(COLUMNS) if column.key == "p_holm") + 1
"""Where the kinds' metric columns go: with the statistics, before size and speed."""


def columns(board: Board, terminal: bool = False) -> list[Column]:
    """The columns to draw: built-ins and the kinds' metrics with a value somewhere, then the plugins'."""
    own = [*COLUMNS[:KIND_COLUMNS_AFTER], *kind_columns(board.kinds.values()), *COLUMNS[KIND_COLUMNS_AFTER:]]
    return [
        column for column in [*own, *board.extra_columns]
        if (column.terminal or not terminal) and not (column.optional and _empty(board, column))
    ]


def kind_columns(kinds: Iterable[Kind]) -> list[Column]:
    """A column per metric the kinds label, shared by kinds that label the same metric
    (headed by the first one's label, the footnote saying what it is in each)."""
    labelled: dict[str, list[tuple[Kind, Metric]]] = {}
    for kind in kinds:
        for metric in kind.columns():
            labelled.setdefault(metric.name, []).append((kind, metric))
    return [
        Column(metric_fields(name)[0], found[0][1].label, _over_seeds(name), optional=True,
               footnote=f"{found[0][1].label} = " + "; ".join(
                   f"{metric.description or metric.name} ({kind.name})" for kind, metric in found)
               + ": mean ± sample std over the row's seeds.")
        for name, found in labelled.items()
    ]


def _over_seeds(name: str) -> Callable[[pd.Series], str]:
    mean, std = metric_fields(name)

    def text(row: pd.Series) -> str:
        if missing(row[mean]):
            return ""
        return f"{row[mean]:.4f}" + ("" if missing(row[std]) else f" ± {row[std]:.4f}")

    return text


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
    return f"{board.suite} — checkpoint: {checkpoint_rule(board)} — {board.protocol}"


def baseline_names(rows: pd.DataFrame) -> str:
    """The baseline rows' method names, as the footnotes and plots call them ('' without any)."""
    names = sorted(set(rows.loc[rows["role"] == "baseline", "method"])) if not rows.empty else []
    return "', '".join(names)


def footnotes(board: Board, terminal: bool = False) -> list[str]:
    """The definitions a reader needs to trust the numbers, shown under every table; a column's
    own footnote only where the column is shown (``terminal``: as ``columns`` takes it)."""
    declared = sorted({kind.baseline for kind in board.kinds.values() if kind.baseline})
    baseline = baseline_names(board.rows) or "', '".join(declared) or "baseline"
    references = ", ".join(f"'{kind.reference}' ({kind.name})" for kind in board.kinds.values() if kind.reference)
    against = f": against {references};" if references else "; no kind here declares one;"
    positive = sorted(set(board.rows.loc[board.rows["positive"].fillna(False).astype(bool), "metric"])
                      if "positive" in board.rows else [])
    log_scale = (f" For {', '.join(positive)}, declared positive by its kind, the interval is exp of the "
                 "t-interval of the seeds' logs, so it stays above 0 (n/a if a seed is not above 0)."
                 if positive else "")
    notes = [
        *under_trained(board),
        f"Checkpoint: {checkpoint_rule(board)}. reproduced = mean ± sample std (ddof 1) over n "
        f"seeds; {CONFIDENCE:.0%} CI from Student's t with n − 1 degrees of freedom.{log_scale} "
        "↑/↓: higher/lower is better.",
        f"Rows 'teacher' and '{baseline}' (the baseline its task's kind declares) are the references. "
        "Teacher-free methods (a student-only baseline among them) are matched to every pair by "
        "(task, student).",
        f"gain = improvement over {baseline} in the metric's units; positive is better for ↑ "
        "and ↓ metrics alike.",
        f"gap closed = (method − {baseline}) / (teacher − {baseline}), both taken in the "
        f"better direction; n/a when the teacher is not ahead of {baseline} by more than the "
        "pooled seed std √((s_teacher² + s_baseline²) / 2) (a single-seed reference counts as 0).",
        "p vs ref = Welch's two-sided t-test of the method's seeds against its task kind's "
        f"reference method (the row marked 'ref'){against} Holm-corrected across the methods of "
        f"each (task, teacher, student) group; {SIGNIFICANT} = p < {ALPHA}; n/a with fewer than 2 "
        "seeds on a side, or no reference in the group.",
        "compression = teacher params / params; speed-up = teacher CPU latency / latency "
        "(median single-sample forward); with several teachers, the best-scoring one is the "
        "reference. rank: within the group, teacher excluded.",
        *[column.footnote for column in columns(board, terminal) if column.footnote],
    ]
    if board.transforms:
        notes.append("A student named '+transform' was compressed around its method, each transform's rows "
                     "measured against its own student-only row: " + "; ".join(board.transforms) + ".")
    if board.commits:
        notes.append("Runs were produced by kdbench commit " + ", ".join(board.commits) + ".")
    if board.numerics:
        notes.append("Computed on: " + "; ".join(board.numerics) + " (nondeterministic kernels may differ in the "
                     "last digits between reruns; latency is always on the CPU, one thread).")
    sources = sorted(set(board.rows.get("paper_source", pd.Series(dtype=str))) - {""})
    if sources:
        notes.append("paper = the value the publication reports: " + "; ".join(sources) + ".")
    notes += verdict_notes(board)
    if (board.rows.get("gap_closed", pd.Series(dtype=float)) > 1).any():
        notes.append(f"{BEATS_TEACHER} gap closed above 1: the method beats its teacher; "
                     "shown, not clipped.")
    if not board.failures.empty:
        notes.append("Runs that failed or were killed are listed below and are never averaged in.")
    return notes


def verdict_notes(board: Board) -> list[str]:
    """One line per paper claim judged (or left untested): where, what, the verdict and the numbers."""
    return [
        f"Paper claim, {v.task} · {v.teacher} → {v.student} · {v.method}: {v.claim} — {v.verdict.upper()} "
        f"({v.detail})" + (f"; {v.source}" if v.source else "") + "."
        for v in board.verdicts.itertuples()
    ]


def under_trained(board: Board) -> list[str]:
    """The baselines whose validation curve still improves per epoch by more than their seeds'
    std: a comparison against a baseline stopped early flatters every method. Each heads the table."""
    rows = board.rows
    if rows.empty or "still_improving" not in rows:
        return []
    flagged = rows[(rows["role"] == "baseline") & rows["still_improving"].fillna(False).astype(bool)]
    notes = [
        f"Under-trained: the baseline is still improving by {abs(r.val_slope):.3g} per epoch "
        f"({r.task} · {r.student}: '{r.method}', val_{r.metric} over its last {LAST_EPOCHS} epochs, "
        f"more than its seed std {r.std:.3g}); more epochs may change the comparison."
        for r in flagged.itertuples()
    ]
    return list(dict.fromkeys(notes))  # a teacher-free baseline repeats in each of its groups


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
