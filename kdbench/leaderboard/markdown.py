"""The leaderboard as GitHub-flavoured markdown: one table row per board row.

Names come from suite files and run tags, which anyone can write, so every cell is
escaped: a method called ``<script>`` reads as text, and ``|`` cannot split a cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kdbench.leaderboard.board import Board
from kdbench.leaderboard.columns import (
    CROSS_TASK_HEADERS,
    CROSS_TASK_NOTE,
    CROSS_TASK_RIGHT,
    FAILURE_HEADERS,
    checkpoint_rule,
    columns,
    cross_task_rows,
    failure_rows,
    footnotes,
    title,
    under_trained,
)
from kdbench.leaderboard.samples import RowSamples

_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
"""Characters that start inline formatting, links, or split a table cell."""


def escape(text: str) -> str:
    """Text that renders literally in a markdown table cell.

    HTML-significant characters become entities (GitHub would otherwise treat ``<x>`` as a
    tag), inline markup and ``|`` are backslash-escaped, and newlines become spaces.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[bool] | None = None) -> str:
    right = right or [False] * len(headers)
    lines = ["| " + " | ".join(escape(h) for h in headers) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fenced(text: str) -> str:
    """``text`` as a code block that shows it literally: markup and HTML inert, and a fence longer
    than any run of backticks inside, so the text cannot close it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}text\n{body}{fence}"


def render(board: Board, stamp: str, description: str = "",
           plots: Sequence[tuple[str, str]] = (), defaults: Board | None = None,
           samples: Sequence[RowSamples] = ()) -> str:
    """The suite's page: header and stamp (and any under-trained baseline), the table, footnotes,
    failures, cross-task, plots, samples.

    ``plots`` are (caption, relative path) pairs, linked so the page renders on GitHub.
    ``defaults``: on a tuned page, the same suite's untuned board, shown as a second table.
    ``samples``: each row's text samples, as code blocks under a heading per row.
    """
    shown = columns(board)
    parts = [
        f"# {escape(title(board))}",
        *([escape(description)] if description else []),
        escape(stamp),
        *([escape(board.wall_time)] if board.wall_time else []),
        *[f"> **{escape(note)}**" for note in under_trained(board)],
        table([c.header for c in shown],
              [[c.cell(row) for c in shown] for _, row in board.rows.iterrows()],
              [c.numeric for c in shown]),
        "\n".join(f"- {escape(note)}" for note in footnotes(board)),
    ]
    if defaults is not None:
        shown_defaults = columns(defaults)
        parts += [f"## {escape(defaults.protocol)} (the same suite at the methods' defaults)",
                  table([c.header for c in shown_defaults],
                        [[c.cell(row) for c in shown_defaults] for _, row in defaults.rows.iterrows()],
                        [c.numeric for c in shown_defaults])]
    if not board.failures.empty:
        parts += ["## Runs that did not finish", table(FAILURE_HEADERS, failure_rows(board))]
    if not board.cross_task.empty:
        parts += [f"## Across tasks — checkpoint: {escape(checkpoint_rule(board))}",
                  table(CROSS_TASK_HEADERS, cross_task_rows(board), CROSS_TASK_RIGHT),
                  escape(CROSS_TASK_NOTE)]
    if plots:
        parts.append("## Plots")
        parts += [f"![{escape(caption)}]({path})" for caption, path in plots]
    if samples:
        parts.append("## Samples")
        for row in samples:
            parts.append(f"### {escape(row.heading)}")
            for sample in row.samples:
                parts += [f"**{escape(sample.name)}**" + (f" — {escape(sample.note())}" if sample.note() else ""),
                          fenced(sample.text)]
            if row.note():
                parts.append(f"*{escape(row.note())}*")
    return "\n\n".join(parts) + "\n"
