"""Reading one suite's board from the MLflow store, or failing in one line.

An absent SQLite file, a suite never run, or an experiment whose runs were all deleted
are the same thing to a reader — nothing to show — and say so without a traceback,
and without creating an empty store as a side effect of looking.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import pluggy

from kdbench.errors import UserError
from kdbench.kind import Kind
from kdbench.leaderboard.board import Board, load_board
from kdbench.suite import Suite
from kdbench.tracking import Tracker, default_tracking_uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for servers and in-memory stores).

    As in SQLAlchemy, ``sqlite:///rel.db`` is relative and ``sqlite:////abs.db`` absolute.
    """
    parsed = urlparse(uri)
    path = unquote(parsed.path)[1:]
    if parsed.scheme != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path)


def read(suite: Suite, tracking_uri: str | None, kinds: Mapping[str, Kind],
         hook: pluggy.HookRelay | None = None) -> tuple[Board, Tracker]:
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
    return load_board(suite.name, records, kinds, suite.metric, suite.paper, hook), tracker
