"""PNG plots of one (task, teacher, student) group: trade-offs, bars, learning curves.

Figures are drawn with matplotlib's object API on the Agg canvas, never ``pyplot``, so
publishing keeps no global figure state and needs no display.

A method has one colour on every plot of every page (``colour``): a reader who learnt that kd
is blue on one group's plot must not find it orange on the next, so the colour depends on the
method's name alone, never on which other methods share the plot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pluggy
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from kdbench.errors import PluginError
from kdbench.leaderboard.columns import baseline_names, si

History = Callable[[str, str], list[tuple[int, float]]]
"""(run id, metric key) -> [(step, value), ...], as ``Tracker.history`` answers."""

DPI = 110
MARKERS = {"teacher": "*", "baseline": "s", "method": "o"}
PLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""A plugin plot's name: it becomes part of a file name, so no folders and no markup."""


def slug(*names: str) -> str:
    """A file-name-safe stem; a short hash keeps two names that slug alike apart."""
    text = "__".join(names)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "group"
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _label(text: str) -> str:
    """Names are user text: a '$' must not switch matplotlib into mathtext."""
    return str(text).replace("$", r"\$")


TEACHER = "#000000"
BASELINE = "#7f7f7f"
TEACHER_SHADES = ("#000000", "#4a3728", "#2f4f4f", "#4b0082")
"""Dark shades for the teachers of a multi-teacher group ('teacher NAME' rows), by name hash."""
PALETTE = (
    # tab10 without its grey (the baseline's)
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    # tab20's light tints of the same hues
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
    # tab20b's darker and middle shades
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b",
    "#ce6dbd",
    # web colours none of the above comes near
    "#000080", "#808000", "#800000", "#008080", "#ff00ff", "#00ff7f", "#4169e1", "#ff1493",
    "#b8860b", "#556b2f", "#ff4500", "#6a5acd", "#20b2aa", "#c71585",
)
"""42 qualitative colours, none grey or black (the references' colours): one for each built-in
method, and a few to spare for the next ones."""
BUILT_IN = (
    "kd", "dkd", "fitnets", "at", "crd", "rkd", "nst", "sp", "pkt", "vid", "cc", "ls-kd", "kd-reverse",
    "takd", "dml", "ban", "crd-infonce", "multi-teacher", "dist", "glnn", "lsp", "progressive", "consistency",
    "score-kd", "rd", "de", "cd", "rrd", "heatmap-kd", "bev-feature", "bev-relation", "gkd", "minillm", "seq-kd",
    "kd-noise", "dafl", "dfad", "deepinversion", "specialists",
)
"""The built-in methods, each given its own palette colour in this order (the classification
methods, which share plots most, get the most distinct ones). A new built-in method not listed
here falls back to the name hash."""
FIXED = {**dict(zip(BUILT_IN, PALETTE, strict=False)), "student-only": BASELINE, "ddim-n": BASELINE}
"""Colours by method name; the kinds' baselines are grey wherever they appear."""


def _hashed(name: str, palette: Sequence[str]) -> str:
    """A palette colour from the name alone (sha1, not ``hash``: the same in every process)."""
    return palette[int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big") % len(palette)]


def colour(method: str, role: str = "method") -> str:
    """The one colour ``method`` is drawn in, on every plot: fixed for the teacher, the baselines and
    the built-in methods; a name hash into the 36-colour ``PALETTE`` for plugin methods and variants.

    The trade-off: a hashed name can share a colour with another method in the same plot
    (chance 1/36 for each other method there), which the legends and tick labels still tell
    apart. Probing for a free colour per plot would avoid that, but then a method's colour would
    depend on the plot's other methods, which is the inconsistency this function exists to end.
    """
    if role == "teacher":
        return TEACHER if method == "teacher" else _hashed(method, TEACHER_SHADES)
    if method in FIXED:
        return FIXED[method]
    if role == "baseline" and "[" not in method:
        return BASELINE
    return _hashed(method, PALETTE)


def _colours(rows: pd.DataFrame) -> dict[str, str]:
    return {method: colour(method, role) for method, role in zip(rows["method"], rows["role"], strict=True)}


def plot_group(rows: pd.DataFrame, history: History, folder: Path, runs: pd.DataFrame | None = None,
               hook: pluggy.HookRelay | None = None) -> list[tuple[str, str]]:
    """Write the group's plots into ``folder``, the core's then the plugins'
    (``kdbench_leaderboard_plots``, given ``runs`` and ``hook``); return (caption, file name) pairs."""
    first = rows.iloc[0]
    stem = slug(first["task"], first["teacher"], first["student"])
    heading = f"{first['task']} · {first['teacher']} → {first['student']}"
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return []
    colours = _colours(rows)
    figures = [(kind, _CAPTIONS[kind], figure) for kind, figure in (
        ("tradeoff", _tradeoff(ok, colours)), ("bars", _bars(ok, colours)),
        ("curves", _curves(ok, colours, history))) if figure is not None]
    if hook is not None and runs is not None:
        figures += _plugin_figures(hook, runs, rows, {kind for kind, _, _ in figures} | set(_CAPTIONS))
    drawn = []
    for kind, caption, figure in figures:
        figure.suptitle(_label(heading), fontsize=10)
        name = f"{stem}-{kind}.png"
        figure.savefig(folder / name, dpi=DPI, bbox_inches="tight")
        drawn.append((f"{heading}: {caption}", name))
    return drawn


def _plugin_figures(hook: pluggy.HookRelay, runs: pd.DataFrame, rows: pd.DataFrame,
                    taken: set[str]) -> list[tuple[str, str, Figure]]:
    """The plugins' plots for this group, in load order, their names checked."""
    figures = []
    for result in reversed(hook.kdbench_leaderboard_plots(runs=runs, rows=rows.copy())):
        for name, caption, figure in result or []:
            where = f"leaderboard plot {str(name)[:40]!r} from a plugin"
            if not isinstance(name, str) or not PLOT_NAME.match(name):
                raise PluginError(f"{where}: a name is letters, digits, '-' and '_' (at most 64)")
            if name in taken:
                raise PluginError(f"{where}: the group already has a plot of that name")
            if not isinstance(figure, Figure):
                raise PluginError(f"{where}: expected a matplotlib Figure, got {type(figure).__name__}")
            taken.add(name)
            figures.append((name, str(caption), figure))
    return figures


_CAPTIONS = {
    "tradeoff": "metric against parameters and CPU latency (mean ± std over seeds; points of one "
                "student are nudged sideways to stay visible)",
    "bars": "metric per method (mean ± std), teacher and baseline as lines",
    "curves": "validation metric per epoch, mean over seeds",
}


def _axis_label(rows: pd.DataFrame, split: str = "test") -> str:
    better = "higher" if rows["higher_is_better"].iloc[0] else "lower"
    return _label(f"{split} {rows['metric'].iloc[0]} ({better} is better)")


def _tradeoff(ok: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    placed = ok.dropna(subset=["params", "latency_ms"])
    if placed.empty:
        return None
    figure = Figure(figsize=(10, 4))
    axes = (("params", "parameters (log scale)"),
            ("latency_ms", "CPU latency per sample, ms (log scale)"))
    for axis, (stat, xlabel) in zip(figure.subplots(1, 2), axes, strict=True):
        for dodge, row in zip(_dodges(placed), placed.itertuples(), strict=True):
            spread = 0 if pd.isna(row.std) else row.std
            axis.errorbar(getattr(row, stat) * dodge, row.mean, yerr=spread,
                          fmt=MARKERS[row.role], color=colours[row.method], capsize=3, markersize=8,
                          label=_label(row.method))
        _log_axis(axis, placed[stat])
        axis.set_xlabel(xlabel)
        axis.set_ylabel(_axis_label(placed))
        axis.grid(alpha=0.3)
    figure.axes[0].legend(fontsize=8)
    return figure


def _dodges(rows: pd.DataFrame) -> list[float]:
    """Small sideways factors for students: they share one size, and would hide each other."""
    students = (rows["role"] != "teacher").cumsum() - 1
    centre = (rows["role"] != "teacher").sum() / 2 - 0.5
    return [1.0 if role == "teacher" else 1.06 ** (k - centre)
            for role, k in zip(rows["role"], students, strict=True)]


def _log_axis(axis: Any, values: pd.Series) -> None:
    """A log x axis labelled in plain numbers (1.5M, 0.05), not powers of ten.

    A narrow range gets ticks at 1, 2 and 5 of each decade, or it would show none.
    """
    axis.set_xscale("log")
    narrow = values.max() / values.min() < 100
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: si(value, "{:g}")))
    axis.xaxis.set_minor_formatter(NullFormatter())


def _bars(ok: pd.DataFrame, colours: dict[str, str]) -> Figure | None:
    methods = ok[ok["role"] == "method"]
    if methods.empty:
        return None
    figure = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(methods)), 4))
    axis = figure.subplots()
    positions = range(len(methods))
    axis.bar(positions, methods["mean"], yerr=methods["std"].fillna(0), capsize=4,
             color=[colours[m] for m in methods["method"]], alpha=0.85)
    names = [_label(m) for m in methods["method"]]
    axis.set_xticks(list(positions), names, rotation=30, ha="right")
    for role, style, name in (("teacher", "--", "teacher"), ("baseline", ":", _label(baseline_names(ok)))):
        for value in ok.loc[ok["role"] == role, "mean"]:
            axis.axhline(value, linestyle=style, color="black", linewidth=1.2, label=name)
    std = methods["std"].fillna(0)
    spread = pd.concat([methods["mean"] - std, methods["mean"] + std, ok["mean"]])
    low, high = spread.min(), spread.max()
    margin = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    axis.set_ylim(low - margin, high + margin)
    axis.set_ylabel(_axis_label(ok) + " — axis not from 0")
    axis.grid(axis="y", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)
    return figure


def _curves(ok: pd.DataFrame, colours: dict[str, str], history: History) -> Figure | None:
    metric = ok["metric"].iloc[0]
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    drawn = False
    for row in ok.itertuples():
        points = [point for run in row.run_ids for point in history(run, f"val_{metric}")]
        if not points:
            continue
        curve = pd.DataFrame(points, columns=["epoch", "value"]).groupby("epoch")["value"].mean()
        axis.plot(curve.index, curve.values, color=colours[row.method], label=_label(row.method),
                  linestyle="--" if row.role == "teacher" else "-",
                  marker="." if len(curve) < 30 else None)
        drawn = True
    if not drawn:
        return None
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(_axis_label(ok, "validation"))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure
