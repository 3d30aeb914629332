"""A leaderboard column: what a header reads, how a row's cell is written, and its footnote.

The terminal, markdown, HTML, CSV and JSON tables are drawn from one list of these — the
core's, the kinds' declared metrics and the plugins' alike (``kdbench.Column``) — so a
column's header, its formatting and its footnote cannot drift apart between outputs. Kept
free of pandas at import: every plugin imports it, and ``import kdbench`` stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Column:
    """A leaderboard column (``kdbench.Column``): the core's, a kind's metric or a plugin's."""

    key: str
    """The row field the column shows, and sorts by."""
    header: str
    text: Callable[[pd.Series], str] | None = None
    """A row's cell; by default the row's value at ``key`` as it is (plugins often hand over text)."""
    numeric: bool = True
    """Right-aligned, and sorted as a number on the HTML page."""
    optional: bool = False
    """Hidden when no row has a value (paper anchors, a kind's metrics, most plugin columns)."""
    terminal: bool = True
    """Shown in the terminal, where width is scarce and each group is its own table."""
    always: bool = False
    """Filled in rows without a result too (names, status, reason); other cells stay blank."""
    footnote: str = ""
    """What the column means, printed under every table that shows it."""

    def cell(self, row: pd.Series) -> str:
        if not (self.always or row["status"] == "ok"):
            return ""
        return (self.text or plain(self.key))(row)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain(key: str) -> Callable[[pd.Series], str]:
    """A cell that shows the row's value at ``key``: floats to 4 significant digits, blank when missing."""

    def text(row: pd.Series) -> str:
        value = row[key]
        if missing(value):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return text
