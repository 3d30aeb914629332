"""Writing a suite's leaderboard to disk, and the index of everything published there.

Each suite gets ``<out>/<suite>/leaderboard.{md,html,csv,json}`` and PNG plots; the
JSON is the record the index is rebuilt from, so publishing one suite keeps the
others listed. Every file carries a stamp (kdbench version, git commit, the exact
command, the date) so a number can be traced to the code and the call that made it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pluggy

from kdbench.leaderboard import html, markdown
from kdbench.leaderboard.board import INTERNAL, Board
from kdbench.leaderboard.columns import checkpoint_rule, columns, footnotes
from kdbench.leaderboard.pictures import Fetch, publish_pictures
from kdbench.leaderboard.plots import History, plot_group
from kdbench.provenance import checkout_root, git_commit, kdbench_version

SCHEMA = "kdbench-leaderboard/1"
FILES = ("leaderboard.md", "leaderboard.html", "leaderboard.csv", "leaderboard.json")


@dataclass(frozen=True)
class Stamp:
    version: str
    commit: str
    command: str
    date: str

    @classmethod
    def now(cls, argv: Sequence[str]) -> Stamp:
        return cls(kdbench_version(), git_commit(), command_line(argv),
                   datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))

    def line(self) -> str:
        return f"kdbench {self.version} · commit {self.commit} · {self.date} · $ {self.command}"


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
                  description: str = "", pictures: Fetch | None = None,
                  hook: pluggy.HookRelay | None = None) -> list[Path]:
    """Write the suite's files into ``folder``; returns the paths written.

    ``pictures`` fetches a run's pictures (``Tracker.pictures``); each row's first run's are shown.
    ``hook``: the plugin manager's hook relay, for the plugins' plots.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in _previous_plots(folder):
        old.unlink(missing_ok=True)
    plots = [plot for rows in board.groups() for plot in plot_group(rows, history, folder, board.runs, hook)]
    if pictures is not None:
        plots += publish_pictures(board, folder, pictures)
    exported = rows_frame(board)
    exported.to_csv(folder / "leaderboard.csv", index=False, encoding="utf-8")
    record = {
        "schema": SCHEMA,
        "suite": board.suite,
        "description": description,
        "checkpoint": checkpoint_rule(board),
        "stamp": asdict(stamp),
        "run_commits": board.commits,
        "columns": [{"key": c.key, "header": c.header} for c in columns(board)],
        "rows": _records(exported),
        "failures": _records(board.failures),
        "cross_task": _records(board.cross_task),
        "notes": footnotes(board),
        "plots": [{"caption": caption, "file": name} for caption, name in plots],
    }
    _write(folder / "leaderboard.json", json.dumps(record, indent=1, default=_plain) + "\n")
    _write(folder / "leaderboard.md", markdown.render(board, stamp.line(), description, plots))
    images = [(caption, (folder / name).read_bytes()) for caption, name in plots]
    _write(folder / "leaderboard.html", html.render(board, stamp.line(), description, images))
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


def write_index(out: Path, stamp: Stamp) -> tuple[list[str], list[Path]]:
    """Rebuild ``index.html`` and ``README.md`` from every suite published under ``out``.

    Returns the suites listed and the JSON files skipped as unreadable (not ours).
    """
    entries, skipped = [], []
    for path in sorted(out.glob("*/leaderboard.json")):
        record = _read(path)
        if record is None:
            skipped.append(path)
            continue
        entries.append(_entry(record, path.parent.name))
    _write(out / "index.html", html.index(entries, stamp.line()))
    _write(out / "README.md", _readme(entries, stamp))
    return [e["suite"] for e in entries], skipped


def _entry(record: dict[str, Any], folder: str) -> dict[str, str]:
    rows = record.get("rows", [])
    best = [f"{r['task']} · {r['teacher']} → {r['student']}: {r['method']}"
            for r in rows if r.get("rank") == 1 and r.get("role") != "teacher"]
    stamp = record.get("stamp", {})
    return {
        "suite": folder, "description": str(record.get("description", "")),
        "checkpoint": str(record.get("checkpoint", "")), "rows": str(len(rows)),
        "best": "; ".join(best), "date": str(stamp.get("date", "")),
        "commit": str(stamp.get("commit", "")),
    }


def _readme(entries: list[dict[str, str]], stamp: Stamp) -> str:
    esc = markdown.escape
    lines = [
        "# kdbench leaderboards", "", esc(stamp.line()), "",
        "| suite | description | checkpoint | rows | best per group | published | commit |",
        "|---|---|---|---:|---|---|---|",
    ]
    for e in entries:
        folder = quote(e["suite"])
        link = f"[{esc(e['suite'])}]({folder}/leaderboard.md) ([html]({folder}/leaderboard.html))"
        cells = [esc(e[k]) for k in ("description", "checkpoint", "rows", "best", "date", "commit")]
        lines.append("| " + " | ".join([link, *cells]) + " |")
    return "\n".join(lines) + "\n"
