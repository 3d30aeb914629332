"""Writing a suite's leaderboard to disk, and the index of everything published there.

Each suite gets ``<out>/<suite>/leaderboard.{md,html,csv,json}`` and PNG plots; the
JSON is the record the index is rebuilt from, so publishing one suite keeps the
others listed. Every file carries a stamp (kdbench version, git commit, the exact
command, the date) so a number can be traced to the code and the call that made it.

A number is only traceable if its runs were made from committed code, so a suite whose
runs include a '-dirty' commit is refused unless the caller allows it, and then the page
says so. The index gives each suite its own stamp (suites are published at different
times from different commits) and a cross-modality board over every suite listed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pluggy

from kdbench.errors import UserError
from kdbench.leaderboard import html, markdown
from kdbench.leaderboard.board import INTERNAL, Board
from kdbench.leaderboard.columns import checkpoint_rule, columns, footnotes
from kdbench.leaderboard.pictures import Fetch, publish_pictures
from kdbench.leaderboard.plots import History, plot_group
from kdbench.leaderboard.samples import SampleFetch, publish_samples
from kdbench.provenance import checkout_root, git_commit, kdbench_version
from kdbench.tracking import RunRecord

SCHEMA = "kdbench-leaderboard/1"
FILES = ("leaderboard.md", "leaderboard.html", "leaderboard.csv", "leaderboard.json")


DIRTY = "-dirty"
"""The suffix ``provenance.git_commit`` gives a commit made from an uncommitted tree."""


@dataclass(frozen=True)
class Stamp:
    """Who published a suite: the publishing code (version, commit), the command and the date.

    ``dirty_runs`` are the suite's run commits made from uncommitted trees, published anyway
    (``--allow-dirty``): kept in the stamp so every rendering of it says so.
    """

    version: str
    commit: str
    command: str
    date: str
    dirty_runs: tuple[str, ...] = ()

    @classmethod
    def now(cls, argv: Sequence[str]) -> Stamp:
        return cls(kdbench_version(), git_commit(), command_line(argv),
                   datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))

    def note(self) -> str:
        """The plain warning a page made from dirty runs carries; empty for clean runs."""
        if not self.dirty_runs:
            return ""
        return (f"published with --allow-dirty: runs made from uncommitted code ({', '.join(self.dirty_runs)}); "
                "their exact code cannot be checked out")

    def line(self) -> str:
        line = f"kdbench {self.version} · commit {self.commit} · {self.date} · $ {self.command}"
        return f"{line} · {self.note()}" if self.dirty_runs else line

    def record(self) -> dict[str, Any]:
        """The stamp as the JSON keeps it: the fields, and the note spelled out."""
        return {**asdict(self), "dirty_runs": list(self.dirty_runs), "note": self.note()}


def dirty_commits(board: Board) -> list[str]:
    """The board's run commits made from an uncommitted tree."""
    return [commit for commit in board.commits if commit.endswith(DIRTY)]


def check_clean(boards: Sequence[Board], allow_dirty: bool = False) -> None:
    """Refuse, in one line, to publish boards whose runs were made from uncommitted code.

    Checked for every suite before any is written, so a refused publish leaves nothing half-done.
    """
    dirty = [(board.suite, found) for board in boards if (found := dirty_commits(board))]
    if dirty and not allow_dirty:
        named = "; ".join(f"suite '{suite}' has runs from uncommitted code ({', '.join(commits)})"
                          for suite, commits in dirty)
        raise UserError(f"{named}: rerun them from a clean commit, or publish with --allow-dirty "
                        "to say so on the page")


def task_modalities(records: Sequence[RunRecord]) -> dict[str, str]:
    """Each task's modality as its runs recorded it (tag ``kdbench.modality``), for the cross-modality board."""
    found: dict[str, str] = {}
    for record in records:
        task, modality = record.tags.get("kdbench.task"), record.tags.get("kdbench.modality")
        if task and modality:
            found.setdefault(task, modality)
    return found


def command_line(argv: Sequence[str], root: Path | None = None) -> str:
    """The command as typed, minus any password in a tracking URI (it would be published), with every
    absolute path — plain, ``--opt=PATH`` or an embedded ``sqlite:///`` store — made relative to the
    checkout (``root``), so the page names no machine's folders; a path outside it keeps its name only."""
    base = (root or checkout_root()).resolve()

    def shown(arg: str) -> str:
        option, equals, value = arg.rpartition("=") if arg.startswith("--") and "=" in arg else ("", "", arg)
        scheme = "sqlite:///" if value.startswith("sqlite:///") else ""
        path = Path(value[len(scheme):])
        if not path.is_absolute():
            return arg
        try:
            relative = path.resolve().relative_to(base).as_posix()
        except ValueError:
            relative = f".../{path.name}"
        return f"{option}{equals}{scheme}{relative}"

    return re.sub(r"(://)[^/@\s]+@", r"\1***@", shlex.join(["kdbench", *map(shown, argv)]))


def publish_suite(board: Board, folder: Path, stamp: Stamp, history: History,
                  description: str = "", pictures: Fetch | None = None, samples: SampleFetch | None = None,
                  hook: pluggy.HookRelay | None = None, allow_dirty: bool = False,
                  modalities: Mapping[str, str] | None = None, defaults: Board | None = None) -> list[Path]:
    """Write the suite's files into ``folder``; returns the paths written.

    ``pictures`` fetches a run's pictures (``Tracker.pictures``); each row's first run's are shown.
    ``samples`` fetches a run's text samples (``Tracker.samples``); the start of each row's first run's is shown.
    ``hook``: the plugin manager's hook relay, for the plugins' plots.
    ``allow_dirty``: publish runs made from uncommitted code (refused otherwise), saying so in the stamp.
    ``modalities``: each task's modality (``task_modalities``), kept in the JSON for the index's
    cross-modality board.
    ``defaults``: when ``board`` is the tuned one, the untuned board of the same runs' suite: the page's
    second table, and the JSON's ``defaults`` (its protocol and rows), so the two never mix in one table.
    """
    check_clean([board] + ([defaults] if defaults is not None else []), allow_dirty)
    stamp = replace(stamp, dirty_runs=tuple(dirty_commits(board)))
    folder.mkdir(parents=True, exist_ok=True)
    for old in _previous_plots(folder):
        old.unlink(missing_ok=True)
    plots = [plot for rows in board.groups() for plot in plot_group(rows, history, folder, board.runs, hook)]
    if pictures is not None:
        plots += publish_pictures(board, folder, pictures)
    texts = publish_samples(board, samples) if samples is not None else []
    exported = rows_frame(board)
    exported.to_csv(folder / "leaderboard.csv", index=False, encoding="utf-8")
    record = {
        "schema": SCHEMA,
        "suite": board.suite,
        "description": description,
        "checkpoint": checkpoint_rule(board),
        "stamp": stamp.record(),
        "run_commits": board.commits,
        "modalities": {task: (modalities or {}).get(task, UNKNOWN) for task in sorted(set(exported["task"]))},
        "columns": [{"key": c.key, "header": c.header} for c in columns(board)],
        "rows": _records(exported),
        "failures": _records(board.failures),
        "cross_task": _records(board.cross_task),
        "notes": [note for note in (stamp.note(),) if note] + footnotes(board),
        "plots": [{"caption": caption, "file": name} for caption, name in plots],
        "protocol": board.protocol,
        "wall_time": board.wall_time,
    }
    if defaults is not None:
        record["defaults"] = {"protocol": defaults.protocol, "rows": _records(rows_frame(defaults))}
    _write(folder / "leaderboard.json", json.dumps(record, indent=1, default=_plain) + "\n")
    _write(folder / "leaderboard.md", markdown.render(board, stamp.line(), description, plots, defaults, texts))
    images = [(caption, (folder / name).read_bytes()) for caption, name in plots]
    _write(folder / "leaderboard.html", html.render(board, stamp.line(), description, images, defaults, texts))
    return [folder / name for name in FILES] + [folder / name for _, name in plots]


def _write(path: Path, text: str) -> None:
    """UTF-8 whatever the locale: the tables are full of ±, ↑ and ×."""
    path.write_text(text, encoding="utf-8")


def rows_frame(board: Board) -> pd.DataFrame:
    """The rows as exported: every computed column, per-seed values as a JSON list."""
    exported = board.rows.drop(columns=[c for c in INTERNAL if c != "values"])
    exported["values"] = [json.dumps(list(v)) for v in exported["values"]]
    return exported


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = frame.to_dict("records")
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in records]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    """numpy scalars (and anything with ``item``) as Python numbers for ``json``."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _previous_plots(folder: Path) -> list[Path]:
    """PNGs the last publish of this suite wrote, so removed groups leave no stale plot."""
    record = _read(folder / "leaderboard.json")
    names = [plot.get("file", "") for plot in record.get("plots", [])] if record else []
    return [folder / Path(name).name for name in names if name.endswith(".png")]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == SCHEMA else None


def write_index(out: Path, stamp: Stamp,
                modalities: Mapping[str, str] | None = None) -> tuple[list[str], list[Path]]:
    """Rebuild ``index.html`` and ``README.md`` from every suite published under ``out``.

    Each suite's row carries that suite's own stamp (its runs' commits, when and by which command
    it was published): the suites come from different commits and days, and one stamp for the
    folder would claim otherwise. ``stamp`` only says when the index itself was rebuilt.
    ``modalities`` (task → modality, e.g. the registry's) fills in tasks a suite's JSON does not
    place (files written before the JSON recorded modalities).
    Returns the suites listed and the JSON files skipped as unreadable (not ours).
    """
    entries, records, skipped = [], [], []
    for path in sorted(out.glob("*/leaderboard.json")):
        record = _read(path)
        if record is None:
            skipped.append(path)
            continue
        entries.append(_entry(record, path.parent.name))
        records.append(record)
    board = cross_modality(records, modalities)
    heading = index_stamp(stamp)
    page = html.index(entries, heading)
    _write(out / "index.html", _insert(page, _cross_modality_html(board)))
    _write(out / "README.md", _readme(entries, heading, board))
    return [e["suite"] for e in entries], skipped


def index_stamp(stamp: Stamp) -> str:
    """The index's own line: when it was rebuilt and by what, pointing at the per-suite stamps."""
    return (f"index rebuilt {stamp.date} by kdbench {stamp.version} (commit {stamp.commit}) · $ {stamp.command}"
            " · each suite's row gives its own runs' commits and the command that published it")


def _entry(record: dict[str, Any], folder: str) -> dict[str, str]:
    """One suite's row of the index, its stamp read from its own JSON.

    ``commit`` holds the runs' commits (what the numbers were made by) and ``date`` the publish
    date, publishing code and command, the fields ``html.index`` shows under "commit" and "published".
    """
    rows = record.get("rows", [])
    best = [f"{r['task']} · {r['teacher']} → {r['student']}: {r['method']}"
            for r in rows if r.get("rank") == 1 and r.get("role") != "teacher"]
    stamp = record.get("stamp", {})
    commits = [str(c) for c in record.get("run_commits") or []]
    runs = "runs: " + (", ".join(commits) or "unknown")
    note = str(stamp.get("note") or "")
    by = f"kdbench {stamp.get('version', '?')} (commit {stamp.get('commit', '?')})"
    published = f"{stamp.get('date', '')} by {by} · $ {stamp.get('command', '')}"
    return {
        "suite": folder, "description": str(record.get("description", "")),
        "checkpoint": str(record.get("checkpoint", "")), "rows": str(len(rows)),
        "wall_time": str(record.get("wall_time") or "not recorded"),
        "best": "; ".join(best), "date": published + (f" · {note}" if note else ""),
        "commit": runs, "run_commits": ", ".join(commits) or "unknown",
        "published": str(stamp.get("date", "")), "publisher": by,
        "command": str(stamp.get("command", "")), "note": note,
    }


def _readme(entries: list[dict[str, str]], heading: str, board: pd.DataFrame) -> str:
    esc = markdown.escape
    lines = [
        "# kdbench leaderboards", "", esc(heading), "",
        "| suite | description | checkpoint | rows | best per group | wall time | runs' commits | published "
        "| command |",
        "|---|---|---|---:|---|---|---|---|---|",
    ]
    for e in entries:
        folder = quote(e["suite"])
        link = f"[{esc(e['suite'])}]({folder}/leaderboard.md) ([html]({folder}/leaderboard.html))"
        published = f"{e['published']} by {e['publisher']}" + (f" · {e['note']}" if e["note"] else "")
        cells = [esc(e[k]) for k in ("description", "checkpoint", "rows", "best", "wall_time", "run_commits")]
        lines.append("| " + " | ".join([link, *cells, esc(published), esc(f"$ {e['command']}")]) + " |")
    if not board.empty:
        headers, rows, right = _cross_modality_cells(board)
        lines += ["", "## Across modalities", "", markdown.table(headers, rows, right), "", esc(CROSS_MODALITY_NOTE)]
    return "\n".join(lines) + "\n"


# ---- the cross-modality board ---------------------------------------------------------------

UNKNOWN = "unknown"
"""The modality of a task nothing places."""
RESAMPLES = 2000
SEED = 0
CROSS_MODALITY_NOTE = (
    "gap closed = (method − baseline) / (teacher − baseline), per (task, teacher, student) of every suite in "
    "this folder; a pair published by several suites is averaged once, a task's pairs are averaged, then "
    "tasks are averaged, so a task with many pairs does not outweigh the others. tasks = tasks with a gap "
    f"closed. 95% interval: percentile bootstrap over tasks ({RESAMPLES} resamples, seed {SEED}); n/a with "
    "one task. Per-modality columns: the mean over that modality's tasks.")


def cross_modality(records: Sequence[Mapping[str, Any]],
                   modalities: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Methods ranked by mean gap closed over every task they ran on, across the suites' JSON records.

    One row per method: ``mean_gap_closed``, ``tasks``, ``pairs``, ``ci_low``/``ci_high`` (NaN with
    one task), ``rank``, and ``mean <modality>`` per modality found. A task's modality is what
    its suite's JSON records (``modalities``), else the ``modalities`` given here, else 'unknown'.
    The task is the unit: it is what is resampled, so the interval says how much the ranking
    rests on which tasks happen to be in the folder.
    """
    found = []
    for record in records:
        placed = {**(modalities or {}), **{k: v for k, v in (record.get("modalities") or {}).items()
                                           if v and v != UNKNOWN}}
        for row in record.get("rows", []):
            gap = row.get("gap_closed")
            if row.get("role") != "method" or not isinstance(gap, (int, float)) or not math.isfinite(gap):
                continue
            found.append({"method": str(row["method"]), "task": str(row["task"]), "teacher": str(row["teacher"]),
                          "student": str(row["student"]), "gap_closed": float(gap),
                          "modality": placed.get(str(row["task"]), UNKNOWN)})
    kinds = sorted({row["modality"] for row in found})
    columns = ["method", "mean_gap_closed", "ci_low", "ci_high", "tasks", "pairs", "rank",
               *[f"mean {m}" for m in kinds]]
    if not found:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(found)
    pairs = frame.groupby(["method", "task", "teacher", "student"], sort=False).agg(
        gap_closed=("gap_closed", "mean"), modality=("modality", "first")).reset_index()
    tasks = pairs.groupby(["method", "task"], sort=False).agg(
        gap_closed=("gap_closed", "mean"), modality=("modality", "first"), pairs=("gap_closed", "size")).reset_index()
    rows = []
    for method, per_task in tasks.groupby("method", sort=False):
        values = per_task["gap_closed"].to_numpy(dtype=float)
        low, high = bootstrap_interval(values, method)
        by_modality = per_task.groupby("modality")["gap_closed"].mean()
        rows.append({"method": method, "mean_gap_closed": float(values.mean()), "ci_low": low, "ci_high": high,
                     "tasks": len(values), "pairs": int(per_task["pairs"].sum()),
                     **{f"mean {m}": float(by_modality[m]) if m in by_modality else math.nan for m in kinds}})
    table = pd.DataFrame(rows)
    table["rank"] = table["mean_gap_closed"].rank(ascending=False, method="min").astype(int)
    table = table.sort_values(["rank", "method"], kind="stable")
    return table[columns].reset_index(drop=True)


def bootstrap_interval(values: np.ndarray, method: str) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean of ``values`` (NaNs with fewer than two).

    Each method draws from its own generator, seeded from ``SEED`` and its name, so its interval
    is reproducible and does not move when another method is added to the folder.
    """
    if len(values) < 2:
        return math.nan, math.nan
    entropy = [SEED, int.from_bytes(hashlib.sha1(method.encode()).digest()[:8], "big")]
    draws = np.random.default_rng(entropy).integers(0, len(values), size=(RESAMPLES, len(values)))
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _number(value: Any) -> str:
    return "n/a" if _missing(value) else f"{float(value):.2f}"


def _cross_modality_cells(board: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, cell text and right-alignment shared by the README and index.html renderings."""
    modal = [c for c in board.columns if c.startswith("mean ")]
    headers = ["rank", "method", "mean gap closed", "95% interval (tasks)", "tasks", "pairs", *modal]
    rows = [[str(r["rank"]), str(r["method"]), _number(r["mean_gap_closed"]),
             "n/a" if _missing(r["ci_low"]) else f"{r['ci_low']:.2f} – {r['ci_high']:.2f}",
             str(r["tasks"]), str(r["pairs"]), *[_number(r[c]) for c in modal]]
            for _, r in board.iterrows()]
    return headers, rows, [h != "method" for h in headers]


def _cross_modality_html(board: pd.DataFrame) -> str:
    if board.empty:
        return ""
    headers, rows, right = _cross_modality_cells(board)
    raw = [[r["rank"], r["method"], r["mean_gap_closed"], r["ci_low"], r["tasks"], r["pairs"],
            *[r[c] for c in board.columns if c.startswith("mean ")]] for _, r in board.iterrows()]
    return ("<h2>Across modalities</h2>\n"
            + html.table("cross-modality", headers, rows, right, raw)
            + f'\n<ul class="notes"><li>{escape(CROSS_MODALITY_NOTE)}</li></ul>')


def _insert(page: str, section: str) -> str:
    """``section`` at the end of the index page's body, before its sorting script (which must
    come last to see every table). ``html.index`` takes no extra sections, hence the splice."""
    if not section:
        return page
    at = page.rfind("<script>")
    at = at if at >= 0 else page.rfind("</body>")
    return page[:at] + section + "\n" + page[at:]
