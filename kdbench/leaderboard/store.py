"""Reading one suite's board from the MLflow store, or failing in one line.

An absent SQLite file, a suite never run, or an experiment whose runs were all deleted
are the same thing to a reader — nothing to show — and say so without a traceback,
and without creating an empty store as a side effect of looking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import pluggy

from kdbench.errors import UserError
from kdbench.kind import Kind
from kdbench.leaderboard.board import Board, load_board
from kdbench.suite import Suite
from kdbench.tracking import RunRecord, Tracker, default_tracking_uri, trials_experiment


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for servers and in-memory stores).

    As in SQLAlchemy, ``sqlite:///rel.db`` is relative and ``sqlite:////abs.db`` absolute.
    """
    parsed = urlparse(uri)
    path = unquote(parsed.path)[1:]
    if parsed.scheme != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path)


def protocol_runs(records: list[RunRecord], tuned: bool) -> list[RunRecord]:
    """One protocol per table: the runs at tuned values (``tuned``) or the untuned ones; teachers in both."""
    return [r for r in records if r.tags.get("kdbench.role") == "teacher" or bool(r.tags.get("kdbench.tuned")) == tuned]


def protocol(records: list[RunRecord], tuned: bool) -> str:
    """What every table's header says of tuning: the budget per method, where it was scored, the sampler and
    each method's search space (from the tuned runs' own config), or that nothing was tuned."""
    if not tuned:
        return "defaults: not tuned"
    # an n/a run at tuned values (its study found the method cannot run) has no budget or space to describe
    chosen = [r for r in records if r.tags.get("kdbench.tuned") and "kdbench.skipped" not in r.tags]
    if not chosen:
        return "tuned: no run at tuned values yet (kdbench run --tuned)"
    trials = sorted({r.params.get("tuning.trials", "?") for r in chosen})
    spaces = {r.tags.get("kdbench.method", "?"): json.loads(r.params.get("tuning.space", "{}")) for r in chosen}
    described = "; ".join(f"{m}: " + (", ".join(f"{k} {v}" for k, v in space.items()) or "nothing to search")
                          for m, space in sorted(spaces.items()))
    sampler = chosen[0].params.get("tuning.sampler", "?")
    return f"tuned: {'/'.join(trials)} trials per method on val, {sampler}; {described}"


def read(suite: Suite, tracking_uri: str | None, kinds: Mapping[str, Kind],
         hook: pluggy.HookRelay | None = None, tuned: bool = False) -> tuple[Board, Tracker]:
    """The suite's board and the tracker it came from (plots read histories through it);
    ``kinds`` and ``hook`` are as ``load_board`` takes them."""
    uri = tracking_uri or default_tracking_uri()
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise UserError(f"no MLflow store at {database}; run a suite first or pass --tracking-uri")
    tracker = Tracker(uri, suite.name)
    records = tracker.runs()
    if not records:
        raise UserError(f"no runs of suite '{suite.name}' in {uri}; run it first")
    board = load_board(suite.name, protocol_runs(records, tuned), kinds, suite.metric, suite.paper, hook,
                       protocol(records, tuned), tracker.history)
    trials = Tracker(uri, trials_experiment(suite.name)).runs() if tuned else []
    return replace(board, wall_time=wall_time(records, trials, tuned)), tracker


def busy_seconds(records: list[RunRecord]) -> float:
    """Seconds during which at least one of ``records`` was running: the union of their intervals, so
    parallel runs are not counted twice and the hours between two sessions not at all."""
    spans = sorted((r.start_time, r.end_time) for r in records if r.end_time)
    total, start, end = 0, None, None
    for begin, finish in spans:
        if end is None or begin > end:
            total += 0 if end is None else end - start
            start, end = begin, finish
        else:
            end = max(end, finish)
    return (total + (0 if end is None else end - start)) / 1000


def wall_time(records: list[RunRecord], trials: list[RunRecord], tuned: bool) -> str:
    """What the page says the suite cost: time with a run going, per part (the runs at defaults, the
    tuning trials and the runs at tuned values), so a reader can budget a rerun."""
    untuned = protocol_runs(records, tuned=False)
    parts = [("runs at defaults", busy_seconds(untuned), f"{len(untuned)} runs")]
    if tuned:
        chosen = [r for r in records if r.tags.get("kdbench.tuned")]
        counted = sum(r.tags.get("kdbench.role") == "trial" for r in trials)
        parts += [("tuning", busy_seconds(trials), f"{counted} trials"),
                  ("runs at tuned values", busy_seconds(chosen), f"{len(chosen)} runs")]
    total = sum(seconds for _, seconds, _ in parts)
    return (f"wall time {duration(total)}: " + ", ".join(f"{name} {duration(seconds)} ({count})"
                                                       for name, seconds, count in parts)
            + " — time with at least one run going, from the runs' MLflow start and end times")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
