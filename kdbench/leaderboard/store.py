"""Reading one suite's board from the MLflow store, or failing in one line.

An absent SQLite file, a suite never run, or an experiment whose runs were all deleted
are the same thing to a reader — nothing to show — and say so without a traceback,
and without creating an empty store as a side effect of looking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import pluggy

from kdbench.errors import UserError
from kdbench.kind import Kind
from kdbench.leaderboard.board import Board, load_board
from kdbench.suite import Suite
from kdbench.tracking import RunRecord, Tracker, default_tracking_uri


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
    chosen = [r for r in records if r.tags.get("kdbench.tuned")]
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
    return board, tracker
