"""A suite's leaderboard: rows grouped by (task, teacher, student), with their references.

Each group holds the teacher and the baseline (the method its task's kind declares:
student-only, or e.g. ddim-n for step distillation) as reference rows, then every
method that distilled that student from that teacher, plus methods that need no
teacher (they ran once per (task, student) and are repeated in each of its groups).
The teacher and baseline are matched by what the runs' tags hold: teacher runs by
(task, teacher name), baseline runs by (task, student), since neither has a partner.
Significance is tested against the kind's reference method (plain KD of that kind); a
task whose kind no loaded plugin declares still shows, with neither baseline nor reference.
A suite's paper anchors that state a claim are judged on the rows they fit (``verdicts``),
and, given the runs' histories, each row carries the slope of its last validation epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pluggy

from kdbench.errors import PluginError
from kdbench.kind import Kind
from kdbench.leaderboard import aggregate
from kdbench.leaderboard.column import missing
from kdbench.leaderboard.columns import Column
from kdbench.leaderboard.statistics import (
    ALPHA,
    LAST_EPOCHS,
    NAN,
    gap_closed,
    holm,
    seed_noise,
    slope,
    still_improving,
    welch_p,
)
from kdbench.suite import PaperAnchor
from kdbench.tracking import RunRecord

NO_MODEL = "-"
ROW_ORDER = {"teacher": 0, "baseline": 1, "method": 2}
INTERNAL = ("values", "run_ids", "claims")
"""Row fields the leaderboard computes with but does not show as columns (``claims``: the
indexes of the suite's claimed anchors that fit the row)."""
History = Callable[[str, str], list[tuple[int, float]]]
"""(run id, metric key) -> [(step, value), ...], as ``Tracker.history`` answers (and plots take)."""
REPRODUCED, NOT_REPRODUCED, UNTESTED = "reproduced", "not reproduced", "untested"
"""A claim's verdicts; untested: a number it needs is missing (a row not run, one seed, no gap)."""
VERDICT_FIELDS = ["task", "teacher", "student", "method", "claim", "verdict", "measured", "target", "p",
                  "gap_closed", "detail", "source"]


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
    numerics: list[str] = field(default_factory=list)
    """Where and how the runs computed (device, precision, kernel mode; ``aggregate.numerics``)."""
    transforms: list[str] = field(default_factory=list)
    """The student transforms the runs applied, each with the library that did the work."""
    kinds: dict[str, Kind] = field(default_factory=dict)
    """The declared kinds of the board's tasks, in registration order (baselines, references,
    the kinds' metric columns)."""
    extra_columns: list[Column] = field(default_factory=list)
    """Columns added by plugins through ``kdbench_leaderboard_columns``."""
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The runs averaged into the rows, one per seed (what plugins' column and plot hooks see)."""
    protocol: str = "defaults: not tuned"
    """How the rows' hyper-parameters were chosen: one protocol per board, stated in its header."""
    wall_time: str = ""
    """How long the suite took to make, measured from its runs' own start and end times
    (``store.wall_time``); empty when built from anything but a store."""
    verdicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=VERDICT_FIELDS))
    """One line per (claimed paper anchor, row it fits): the verdict and the numbers behind it; an
    anchor that fits no row is a line too (untested), so a claim never silently drops out."""

    def groups(self) -> list[pd.DataFrame]:
        """The rows of each (task, teacher, student) group, in table order."""
        return [rows for _, rows in self.rows.groupby(["task", "teacher", "student"], sort=False)]


def load_board(suite: str, records: list[RunRecord], kinds: Mapping[str, Kind], metric: str | None = None,
               anchors: Sequence[PaperAnchor] = (), hook: pluggy.HookRelay | None = None,
               protocol: str = "defaults: not tuned", history: History | None = None) -> Board:
    """The board of one suite from its MLflow runs (see ``build``)."""
    return build(suite, aggregate.runs_frame(records), kinds, metric, anchors, hook, protocol, history)


def build(suite: str, frame: pd.DataFrame, kinds: Mapping[str, Kind], metric: str | None = None,
          anchors: Sequence[PaperAnchor] = (), hook: pluggy.HookRelay | None = None,
          protocol: str = "defaults: not tuned", history: History | None = None) -> Board:
    """Aggregate runs into a board; ``kinds`` are the declared kinds by name
    (``Registry.kinds.entries``), ``hook`` is the plugin manager's hook relay, if any.

    ``history`` (``Tracker.history``) reads the runs' validation curves for the convergence
    column; without it the column stays empty, as it does for runs that logged no curve.
    """
    stats = aggregate.summary(frame, kinds, metric)
    groups = [_group(stats, key, anchors, kinds) for key in _group_keys(stats)]
    rows = pd.concat(groups, ignore_index=True) if groups else pd.DataFrame(columns=stats.columns)
    _add_convergence(rows, history)
    verdicts = _verdicts(rows, anchors)
    runs = aggregate.current(frame) if not frame.empty else frame
    extra = _plugin_columns(hook, runs, rows)
    present = set(stats["kind"])
    return Board(
        suite=suite, rows=rows, failures=aggregate.failures(frame), cross_task=cross_task(rows),
        checkpoints=aggregate.checkpoints(frame),
        commits=sorted(set(frame["commit"]) - {""}) if not frame.empty else [],
        numerics=sorted(set(frame["numerics"])) if "numerics" in frame else [],
        transforms=_transforms(frame),
        kinds={name: kind for name, kind in kinds.items() if name in present}, extra_columns=extra, runs=runs,
        protocol=protocol, verdicts=verdicts,
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
    _judge(rows, anchors)
    rows["order"] = rows["role"].map(ROW_ORDER)
    rows["unranked"] = rows["rank"].isna()
    rows = rows.sort_values(["order", "unranked", "rank", "method"], kind="stable")
    return rows.drop(columns=["order", "unranked"]).reset_index(drop=True)


def _add_paper(rows: pd.DataFrame, anchors: Sequence[PaperAnchor], task: str,
               methods: Sequence[str], teachers: Sequence[str], student: str) -> None:
    """The paper's number for each row and where it was printed (the first anchor with a value
    that fits), and the claimed anchors that fit it, to be judged once the row is compared."""
    fits = [
        [i for i, a in enumerate(anchors) if (a.task, a.method) == (task, method)
         and a.teacher in (None, teacher) and a.student in (None, student)]
        for method, teacher in zip(methods, teachers, strict=True)
    ]
    found = [next((anchors[i] for i in fit if anchors[i].value is not None), None) for fit in fits]
    rows["paper"] = [NAN if a is None else a.value for a in found]
    rows["paper_source"] = ["" if a is None else a.source for a in found]
    rows["claims"] = [[i for i in fit if anchors[i].claimed] for fit in fits]


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
    # by more than the reference's own seed spread: a plain-language reading beside the test
    spread = 0.0 if reference is None or missing(reference["std"]) else reference["std"]
    rows["beats_reference"] = [
        bool(s * (mean - reference["mean"]) > spread) if test and reference is not None else None
        for mean, s, test in zip(rows["mean"], sign, tested, strict=True)
    ]
    rows["p_holm"] = holm(rows["p_vs_reference"].tolist())
    rows["significant"] = rows["p_holm"].map(lambda p: None if math.isnan(p) else bool(p < ALPHA))

    for stat, ratio in (("params", "compression"), ("latency_ms", "speedup")):
        rows[ratio] = teacher[stat] / rows[stat] if teacher is not None else NAN
    ranked = (sign * rows["mean"]).where(ok & (rows["role"] != "teacher"))
    rows["rank"] = ranked.rank(ascending=False, method="min")
    return rows


def _judge(rows: pd.DataFrame, anchors: Sequence[PaperAnchor]) -> None:
    """Each row's verdict on the claims that fit it (all must hold), their details, and the Welch
    p of its direction claim; ``verdict_lines`` holds one judgement per claim for the board."""
    teacher = _best(rows[rows["role"] == "teacher"])
    judged = [[_claim(anchors[i], row, rows, teacher) for i in row.claims] for _, row in rows.iterrows()]
    rows["verdict"] = [_overall([j["verdict"] for j in found]) if found else "" for found in judged]
    rows["verdict_detail"] = ["; ".join(f"{j['claim']}: {j['detail']} — {j['verdict']}" for j in found)
                              for found in judged]
    rows["verdict_p"] = [next((j["p"] for j in found if not math.isnan(j["p"])), NAN) for found in judged]
    rows["verdict_lines"] = judged


def _overall(verdicts: Sequence[str]) -> str:
    """One failed check settles it; otherwise a check that could not be made leaves it untested."""
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    return UNTESTED if UNTESTED in verdicts else REPRODUCED


def _claim(anchor: PaperAnchor, row: pd.Series, rows: pd.DataFrame, teacher: pd.Series | None) -> dict[str, Any]:
    """Judge one anchor's claim on one row: each tolerance it gives is a check that holds (True),
    fails (False) or cannot be made (None: a number it needs is missing)."""
    places = int(row["decimals"])
    sign = 1.0 if row["higher_is_better"] else -1.0
    ok = row["status"] == "ok"
    mean = row["mean"] if ok else NAN
    checks: list[bool | None] = []
    said: list[str] = []
    target, p = NAN, NAN

    def other(name: str) -> pd.Series | None:
        """The table's row called ``name``: the (best) teacher, or a method's own row."""
        if name == "teacher":
            return teacher
        found = rows[(rows["method"] == name) & (rows["role"] != "teacher") & (rows["status"] == "ok")]
        return None if found.empty else found.iloc[0]

    if anchor.within is not None:
        near = other(anchor.of) if anchor.of is not None else None
        target = float(anchor.value) if anchor.of is None else (NAN if near is None else near["mean"])
        if math.isnan(mean) or math.isnan(target):
            checks.append(None)
            said.append(f"no {'result' if math.isnan(mean) else anchor.of + ' row'} to compare")
        else:
            checks.append(bool(abs(mean - target) <= anchor.within))  # numpy's bool is not ``False``
            said.append(f"{mean:.{places}f} vs {target:.{places}f}, |Δ| {abs(mean - target):.{places}f}")
    if anchor.better_than is not None:
        name = anchor.better_than
        beaten = other(name)
        if math.isnan(mean) or beaten is None:
            checks.append(None)
            said.append(f"no {'result' if math.isnan(mean) else name + ' row'} to compare")
        else:
            p = welch_p(row["values"], beaten["values"])
            better = bool(sign * (mean - beaten["mean"]) > 0)
            shown = "n/a" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")
            said.append(f"{mean:.{places}f} vs {beaten['mean']:.{places}f}, p {shown}")
            checks.append(False if not better else (None if math.isnan(p) else bool(p < ALPHA)))
    gap = row.get("gap_closed", NAN) if ok else NAN
    if anchor.gap_closed is not None:
        checks.append(None if missing(gap) else bool(gap >= anchor.gap_closed))
        said.append("gap closed n/a" if missing(gap) else f"gap closed {gap:.2f}")
    if not ok:
        said = [f"row {row['status']}" + (f": {row['reason']}" if row["reason"] else "")]
    verdict = _overall([NOT_REPRODUCED if c is False else UNTESTED if c is None else REPRODUCED for c in checks])
    return {"claim": _claim_text(anchor), "verdict": verdict, "measured": mean, "target": target, "p": p,
            "gap_closed": gap if anchor.gap_closed is not None else NAN, "detail": "; ".join(said),
            "source": anchor.source}


def _verdicts(rows: pd.DataFrame, anchors: Sequence[PaperAnchor]) -> pd.DataFrame:
    """The board's judgements, one per (claimed anchor, row it fits), then the claimed anchors
    no row fits; moves each row's judgements out of ``verdict_lines`` into this table."""
    lines: list[dict[str, Any]] = []
    used: set[int] = set()
    if "verdict_lines" in rows:
        for (_, row), judged in zip(rows.iterrows(), rows.pop("verdict_lines"), strict=True):
            used.update(row["claims"])
            lines += [{"task": row["task"], "teacher": row["teacher"], "student": row["student"],
                       "method": row["method"], **found} for found in judged]
    for i, anchor in enumerate(anchors):
        if anchor.claimed and i not in used:
            lines.append({"task": anchor.task, "teacher": anchor.teacher or "-", "student": anchor.student or "-",
                          "method": anchor.method, "claim": _claim_text(anchor), "verdict": UNTESTED,
                          "measured": NAN, "target": NAN if anchor.of else anchor.value, "p": NAN,
                          "gap_closed": NAN, "detail": "no row of this board fits the anchor",
                          "source": anchor.source})
    return pd.DataFrame(lines, columns=VERDICT_FIELDS)


def _claim_text(anchor: PaperAnchor) -> str:
    """An anchor's claim in words: its tolerances, each one a check."""
    parts = []
    if anchor.within is not None:
        of = f"{anchor.of}'s measured mean" if anchor.of is not None else f"the paper's {anchor.value:g}"
        parts.append(f"within {anchor.within:g} of {of}")
    if anchor.better_than is not None:
        parts.append(f"better than {anchor.better_than} (Welch p < {ALPHA})")
    if anchor.gap_closed is not None:
        parts.append(f"gap closed ≥ {anchor.gap_closed:g}")
    return ", ".join(parts)


def _add_convergence(rows: pd.DataFrame, history: History | None) -> None:
    """Each row's ``val_slope``: the least-squares slope per epoch of its reported metric's
    validation curve over the last ``LAST_EPOCHS`` epochs, averaged over its seeds; and
    ``still_improving``: whether that slope, in the better direction, exceeds the seeds' std."""
    curves: dict[tuple[str, str], float] = {}  # teacher-free rows repeat in every group: read once

    def run_slope(run: str, key: str) -> float:
        if (run, key) not in curves:
            curves[run, key] = slope(history(run, key), LAST_EPOCHS) if history is not None else NAN
        return curves[run, key]

    slopes = []
    for row in rows.itertuples():
        found = [s for s in (run_slope(run, f"val_{row.metric}") for run in row.run_ids) if not math.isnan(s)]
        slopes.append(math.fsum(found) / len(found) if found else NAN)
    rows["val_slope"] = slopes
    rows["still_improving"] = [still_improving(s, std, bool(higher)) for s, std, higher
                               in zip(slopes, rows["std"], rows["higher_is_better"], strict=True)]


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


def _transforms(frame: pd.DataFrame) -> list[str]:
    """'int8-dynamic (torch.ao quantize_dynamic ...)': each transform the runs applied, with its library."""
    if "transform" not in frame:
        return []
    pairs = zip(frame["transform"], frame["transform_backend"], strict=True)
    return sorted({f"{label} ({backend})" if backend else label for label, backend in pairs if label})
