"""A suite's leaderboard: rows grouped by (task, teacher, student), with their references.

Each group holds the teacher and the baseline (the method its task's kind declares:
student-only, or e.g. ddim-n for step distillation) as reference rows, then every
method that distilled that student from that teacher, plus methods that need no
teacher (they ran once per (task, student) and are repeated in each of its groups).
The teacher and baseline are matched by what the runs' tags hold: teacher runs by
(task, teacher name), baseline runs by (task, student), since neither has a partner.
Significance is tested against the kind's reference method (plain KD of that kind); a
task whose kind no loaded plugin declares still shows, with neither baseline nor reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pluggy

from kdbench.errors import PluginError
from kdbench.kind import Kind
from kdbench.leaderboard import aggregate
from kdbench.leaderboard.columns import Column
from kdbench.leaderboard.statistics import ALPHA, NAN, gap_closed, holm, seed_noise, welch_p
from kdbench.suite import PaperAnchor
from kdbench.tracking import RunRecord

NO_MODEL = "-"
ROW_ORDER = {"teacher": 0, "baseline": 1, "method": 2}
INTERNAL = ("values", "run_ids")
"""Row fields the leaderboard computes with but does not show as columns."""


@dataclass
class Board:
    suite: str
    rows: pd.DataFrame
    """One row per (task, teacher, student, method) line, grouped, references first."""
    failures: pd.DataFrame
    """Runs that did not finish (and were not finished since): never averaged in."""
    cross_task: pd.DataFrame
    """Methods ranked by mean gap closed over the tasks they ran on."""
    checkpoints: list[str]
    commits: list[str]
    """The kdbench commits that produced the runs."""
    kinds: dict[str, Kind] = field(default_factory=dict)
    """The declared kinds of the board's tasks, in registration order (baselines, references,
    the kinds' metric columns)."""
    extra_columns: list[Column] = field(default_factory=list)
    """Columns added by plugins through ``kdbench_leaderboard_columns``."""
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The runs averaged into the rows, one per seed (what plugins' column and plot hooks see)."""
    protocol: str = "defaults: not tuned"
    """How the rows' hyper-parameters were chosen: one protocol per board, stated in its header."""

    def groups(self) -> list[pd.DataFrame]:
        """The rows of each (task, teacher, student) group, in table order."""
        return [rows for _, rows in self.rows.groupby(["task", "teacher", "student"], sort=False)]


def load_board(suite: str, records: list[RunRecord], kinds: Mapping[str, Kind], metric: str | None = None,
               anchors: Sequence[PaperAnchor] = (), hook: pluggy.HookRelay | None = None,
               protocol: str = "defaults: not tuned") -> Board:
    """The board of one suite from its MLflow runs (see ``build``)."""
    return build(suite, aggregate.runs_frame(records), kinds, metric, anchors, hook, protocol)


def build(suite: str, frame: pd.DataFrame, kinds: Mapping[str, Kind], metric: str | None = None,
          anchors: Sequence[PaperAnchor] = (), hook: pluggy.HookRelay | None = None,
          protocol: str = "defaults: not tuned") -> Board:
    """Aggregate runs into a board; ``kinds`` are the declared kinds by name
    (``Registry.kinds.entries``), ``hook`` is the plugin manager's hook relay, if any."""
    stats = aggregate.summary(frame, kinds, metric)
    groups = [_group(stats, key, anchors, kinds) for key in _group_keys(stats)]
    rows = pd.concat(groups, ignore_index=True) if groups else pd.DataFrame(columns=stats.columns)
    runs = aggregate.current(frame) if not frame.empty else frame
    extra = _plugin_columns(hook, runs, rows)
    present = set(stats["kind"])
    return Board(
        suite=suite, rows=rows, failures=aggregate.failures(frame), cross_task=cross_task(rows),
        checkpoints=aggregate.checkpoints(frame),
        commits=sorted(set(frame["commit"]) - {""}) if not frame.empty else [],
        kinds={name: kind for name, kind in kinds.items() if name in present}, extra_columns=extra, runs=runs,
        protocol=protocol,
    )


def _group_keys(stats: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(task, teacher, student) groups: each distilled pair, then whatever no pair covers."""
    teachers = stats[stats["role"] == "teacher"]
    distilled = stats[stats["role"] == "distill"]
    keys = set(zip(distilled["task"], distilled["teacher"], distilled["student"], strict=True))
    teacher_free = stats[stats["role"] == "student"]
    for task, student in set(zip(teacher_free["task"], teacher_free["student"], strict=True)):
        if not any(k[0] == task and k[2] == student for k in keys):
            names = sorted(set(teachers.loc[teachers["task"] == task, "teacher"])) or [NO_MODEL]
            keys.update((task, name, student) for name in names)
    for task, name in set(zip(teachers["task"], teachers["teacher"], strict=True)):
        if not any(k[0] == task and name in k[1].split("+") for k in keys):
            keys.add((task, name, NO_MODEL))
    return sorted(keys)


def _group(stats: pd.DataFrame, key: tuple[str, str, str],
           anchors: Sequence[PaperAnchor], kinds: Mapping[str, Kind]) -> pd.DataFrame:
    task, teacher, student = key
    names = teacher.split("+")
    ours = stats[stats["task"] == task]
    kind = kinds.get(ours["kind"].iloc[0])
    baseline, reference = (kind.baseline, kind.reference) if kind is not None else (None, None)
    teachers = ours[(ours["role"] == "teacher") & ours["teacher"].isin(names)].copy()
    single = len(names) == 1
    teachers["method"] = ["teacher" if single else f"teacher {n}" for n in teachers["teacher"]]
    _add_paper(teachers, anchors, task, ["teacher"] * len(teachers), teachers["teacher"], student)
    teachers["role"] = "teacher"
    distilled = (ours["role"] == "distill") & (ours["teacher"] == teacher)
    learns = (ours["role"] == "student") | distilled
    students = ours[(ours["student"] == student) & learns].copy()
    students["role"] = ["baseline" if m == baseline else "method" for m in students["base_method"]]
    _add_paper(students, anchors, task, students["method"], [teacher] * len(students), student)
    rows = pd.concat([teachers, students], ignore_index=True)
    rows = rows.assign(teacher=teacher, student=student, reference=reference or "")
    rows = _compare(rows)
    rows["order"] = rows["role"].map(ROW_ORDER)
    rows["unranked"] = rows["rank"].isna()
    rows = rows.sort_values(["order", "unranked", "rank", "method"], kind="stable")
    return rows.drop(columns=["order", "unranked"]).reset_index(drop=True)


def _add_paper(rows: pd.DataFrame, anchors: Sequence[PaperAnchor], task: str,
               methods: Sequence[str], teachers: Sequence[str], student: str) -> None:
    """The paper's number for each row, and where it was printed (the first anchor that fits)."""
    found = [
        next((a for a in anchors if (a.task, a.method) == (task, method)
              and a.teacher in (None, teacher) and a.student in (None, student)), None)
        for method, teacher in zip(methods, teachers, strict=True)
    ]
    rows["paper"] = [NAN if a is None else a.value for a in found]
    rows["paper_source"] = ["" if a is None else a.source for a in found]


def _best(rows: pd.DataFrame) -> pd.Series | None:
    """The best-scoring ok row: the reference teacher when a method learns from several."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return None
    sign = 1 if ok["higher_is_better"].iloc[0] else -1
    return ok.loc[(ok["mean"] * sign).idxmax()]


def _compare(rows: pd.DataFrame) -> pd.DataFrame:
    """Gain, gap closed, significance against the reference (the kind's plain KD), size and
    speed against the teacher, rank. ``rows["reference"]`` names the reference variant."""
    ok = rows["status"] == "ok"
    is_reference = (rows["method"] == rows["reference"]) & (rows["role"] == "method")
    teacher = _best(rows[rows["role"] == "teacher"])
    baseline = _best(rows[rows["role"] == "baseline"])
    reference = _best(rows[is_reference])
    sign = rows["higher_is_better"].map(lambda higher: 1.0 if higher else -1.0)
    method = (rows["role"] == "method") & ok

    rows["gain"] = NAN
    rows["gap_closed"] = NAN
    if baseline is not None:
        rows["gain"] = (sign * (rows["mean"] - baseline["mean"])).where(method)
    if teacher is not None and baseline is not None:
        noise = seed_noise(teacher["std"], baseline["std"])
        rows["gap_closed"] = [
            gap_closed(r.mean, baseline["mean"], teacher["mean"], r.higher_is_better, noise)
            if m else NAN
            for r, m in zip(rows.itertuples(), method, strict=True)
        ]

    tested = ok & (rows["role"] != "teacher") & ~is_reference
    rows["p_vs_reference"] = [
        welch_p(values, reference["values"]) if test and reference is not None else NAN
        for values, test in zip(rows["values"], tested, strict=True)
    ]
    rows["p_holm"] = holm(rows["p_vs_reference"].tolist())
    rows["significant"] = rows["p_holm"].map(lambda p: None if math.isnan(p) else bool(p < ALPHA))

    for stat, ratio in (("params", "compression"), ("latency_ms", "speedup")):
        rows[ratio] = teacher[stat] / rows[stat] if teacher is not None else NAN
    ranked = (sign * rows["mean"]).where(ok & (rows["role"] != "teacher"))
    rows["rank"] = ranked.rank(ascending=False, method="min")
    return rows


def cross_task(rows: pd.DataFrame) -> pd.DataFrame:
    """Methods by mean gap closed: first averaged over a task's pairs, then over tasks.

    Averaging per task first keeps a task with many teacher/student pairs from
    outweighing the others. ``tasks`` counts tasks the method was tried on (n/a included),
    ``tasks_with_gap`` those where a gap closed could be computed.
    """
    columns = ["method", "mean_gap_closed", "tasks_with_gap", "tasks", "rank"]
    methods = rows[rows["role"] == "method"] if not rows.empty else rows
    if methods.empty:
        return pd.DataFrame(columns=columns)
    per_task = methods.groupby(["method", "task"], sort=False)["gap_closed"].mean().reset_index()
    table = per_task.groupby("method", sort=False).agg(
        mean_gap_closed=("gap_closed", "mean"),
        tasks_with_gap=("gap_closed", "count"),
        tasks=("task", "nunique"),
    ).reset_index()
    table["rank"] = table["mean_gap_closed"].rank(ascending=False, method="min")
    table = table.sort_values(["rank", "method"], na_position="last", kind="stable")
    return table[columns].reset_index(drop=True)


def _plugin_columns(hook: pluggy.HookRelay | None, runs: pd.DataFrame,
                    rows: pd.DataFrame) -> list[Column]:
    """Add the columns plugins return from ``kdbench_leaderboard_columns``, in load order."""
    if hook is None or rows.empty:
        return []
    added: list[Column] = []
    for result in reversed(hook.kdbench_leaderboard_columns(runs=runs, rows=rows.copy())):
        for pair in result or []:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Column)):
                raise PluginError("a plugin's leaderboard columns are (kdbench.Column, values) pairs, "
                                  f"not {type(pair).__name__} {str(pair)[:40]!r}")
            column, values = pair
            where = f"leaderboard column '{column.key}' from a plugin"
            if column.key in rows.columns:
                raise PluginError(f"{where} is already a column")
            if len(values) != len(rows):
                raise PluginError(f"{where} has {len(values)} values for {len(rows)} rows")
            if isinstance(values, pd.Series):
                rows[column.key] = values.reindex(rows.index)
            else:
                rows[column.key] = pd.Series(list(values), index=rows.index)
            added.append(column)
    return added
