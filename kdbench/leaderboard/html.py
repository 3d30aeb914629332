"""The leaderboard as one self-contained HTML page: inline CSS and JS, plots inlined.

The page must open from a file, offline, years later: nothing is fetched, the plots are
base64 data URIs, and sorting is a few lines of script over ``data-sort`` attributes.
Every name is escaped, since suite files and run tags are text anyone can write.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

import pandas as pd

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
    under_trained,
)
from kdbench.leaderboard.samples import RowSamples

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --band: #f6f8fa; --ref: #fff8e6;
        --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; padding: 24px; max-width: 1900px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.stamp, .desc { color: var(--muted); margin: 2px 0; } .stamp code { font-size: 12px; }
.checkpoint { display: inline-block; margin: 10px 0; padding: 4px 10px; border-radius: 12px;
              background: #ddf4ff; color: #0a3069; font-weight: 600; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px;
        font-variant-numeric: tabular-nums; }
caption { text-align: left; padding: 8px 10px; font-weight: 600; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap;
         text-align: left; }
th { background: var(--band); position: sticky; top: 0; font-weight: 600; }
th.sortable { cursor: pointer; user-select: none; } th.sortable:hover { color: var(--accent); }
th.sortable::after { content: " \\2195"; color: #b0b8c1; font-size: 11px; }
th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--accent); }
th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--accent); }
td.num, th.num { text-align: right; }
tr.group-start td { border-top: 2px solid #8c959f; }
tr.role-teacher td, tr.role-baseline td { background: var(--ref); font-style: italic; }
tr.status-na td, tr.status-failed td { color: var(--muted); }
tr.status-failed td { background: #ffebe9; }
.warning { margin: 6px 0; padding: 6px 10px; border-radius: 6px; background: #fff1e5; color: #762c00;
           font-weight: 600; }
tbody tr:hover td { background: #eaeef2; }
ul.notes { color: var(--muted); font-size: 13px; padding-left: 18px; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px;
         background: #fff; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; max-width: 760px; }
h3 { font-size: 15px; margin: 18px 0 6px; } .sample-name { margin: 8px 0 2px; font-weight: 600; }
.sample-name span, .sample-note { color: var(--muted); font-weight: normal; font-size: 13px; }
pre.sample { margin: 0; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px;
             background: var(--band); white-space: pre-wrap; overflow-wrap: anywhere; max-width: 1100px; }
a { color: var(--accent); }
#suites td { white-space: normal; min-width: 6em; }
"""

SCRIPT = """
// Click a header: ascending, descending, then back to the published order. Empty cells
// (n/a) always sort last. Numbers compare as numbers, the rest as text.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var body = table.tBodies[0];
  Array.prototype.forEach.call(body.rows, function (row, i) { row.dataset.order = i; });
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var state = th.getAttribute("aria-sort");
      var next = {ascending: "descending", descending: "none"}[state] || "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      var numeric = th.dataset.type === "num";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        if (next === "none") { return a.dataset.order - b.dataset.order; }
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var d = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return (next === "ascending" ? d : -d) || a.dataset.order - b.dataset.order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.classList.toggle("sorted", next !== "none");
      if (next !== "none") { th.setAttribute("aria-sort", next); }
    });
  });
});
"""


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body``; ``title`` is escaped here."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


class Html(str):
    """Text that is already HTML (links the page builds itself); everything else is escaped."""


def _cell(text: str) -> str:
    return text if isinstance(text, Html) else escape(text)


def _sort_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)


def table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
          numeric: Sequence[bool], sort_values: Sequence[Sequence[object]] | None = None,
          classes: Sequence[str] | None = None, caption: str = "") -> str:
    """A sortable table; cells are escaped text, ``sort_values`` the raw values behind them."""
    sort_values = sort_values or rows
    classes = classes or [""] * len(rows)
    head = "".join(
        f'<th scope="col"{" class=num" if num else ""} data-type="{"num" if num else "text"}">'
        f"{escape(h)}</th>"
        for h, num in zip(headers, numeric, strict=True)
    )
    body = "\n".join(
        f'<tr class="{escape(cls)}">' + "".join(
            f'<td{" class=num" if num else ""} data-sort="{escape(_sort_value(raw))}">'
            f"{_cell(cell)}</td>"
            for cell, raw, num in zip(cells, raws, numeric, strict=True)
        ) + "</tr>"
        for cells, raws, cls in zip(rows, sort_values, classes, strict=True)
    )
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table id="{escape(table_id)}" class="sortable">{title}'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>")


def _row_classes(rows: pd.DataFrame) -> list[str]:
    keys = rows[["task", "teacher", "student"]]
    starts = ~keys.eq(keys.shift()).all(axis=1)
    return [f"role-{role} status-{status.replace('/', '')}" + (" group-start" if start else "")
            for role, status, start in zip(rows["role"], rows["status"], starts, strict=True)]


def render(board: Board, stamp: str, description: str = "",
           images: Sequence[tuple[str, bytes]] = (), defaults: Board | None = None,
           samples: Sequence[RowSamples] = ()) -> str:
    """The suite's page; ``images`` are (caption, PNG bytes) pairs, inlined as data URIs;
    ``defaults``: on a tuned page, the same suite's untuned board, shown as a second table;
    ``samples``: each row's text samples, escaped into ``<pre>`` blocks under a heading per row."""
    shown = columns(board)
    rule = checkpoint_rule(board)
    parts = [
        f"<header><h1>{escape(board.suite)}</h1>",
        f'<p class="desc">{escape(description)}</p>' if description else "",
        f'<p class="stamp">{escape(stamp)}</p>',
        f'<p class="stamp">{escape(board.wall_time)}</p>' if board.wall_time else "",
        f'<p class="checkpoint">Checkpoint: {escape(rule)}</p>',
        "".join(f'<p class="warning">{escape(note)}</p>' for note in under_trained(board)) + "</header>",
        table("leaderboard", [c.header for c in shown],
              [[c.cell(row) for c in shown] for _, row in board.rows.iterrows()],
              [c.numeric for c in shown],
              [[row[c.key] for c in shown] for _, row in board.rows.iterrows()],
              _row_classes(board.rows), caption=f"{board.suite} — checkpoint: {rule}"),
        '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in footnotes(board)) + "</ul>",
    ]
    if defaults is not None:
        second = columns(defaults)
        parts += [f"<h2>{escape(defaults.protocol)} (the same suite at the methods' defaults)</h2>",
                  table("leaderboard-defaults", [c.header for c in second],
                        [[c.cell(row) for c in second] for _, row in defaults.rows.iterrows()],
                        [c.numeric for c in second],
                        [[row[c.key] for c in second] for _, row in defaults.rows.iterrows()],
                        _row_classes(defaults.rows))]
    if not board.failures.empty:
        parts += ["<h2>Runs that did not finish</h2>",
                  table("failures", FAILURE_HEADERS, failure_rows(board),
                        [False] * len(FAILURE_HEADERS))]
    if not board.cross_task.empty:
        parts += [f"<h2>Across tasks — checkpoint: {escape(rule)}</h2>",
                  table("cross-task", CROSS_TASK_HEADERS, cross_task_rows(board), CROSS_TASK_RIGHT,
                        board.cross_task.values.tolist()),
                  f'<ul class="notes"><li>{escape(CROSS_TASK_NOTE)}</li></ul>']
    if images:
        parts.append('<h2>Plots</h2><div class="plots">')
        parts += [f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,'
                  f'{base64.b64encode(png).decode()}"><figcaption>{escape(caption)}</figcaption></figure>'
                  for caption, png in images]
        parts.append("</div>")
    if samples:
        parts.append("<h2>Samples</h2>")
        parts += [_samples(row) for row in samples]
    return page(f"kdbench · {board.suite}", "\n".join(p for p in parts if p))


def _samples(row: RowSamples) -> str:
    """One row's samples: its heading, then each sample's name, where it was cut, and its text."""
    parts = [f"<h3>{escape(row.heading)}</h3>"]
    for sample in row.samples:
        note = f" <span>— {escape(sample.note())}</span>" if sample.note() else ""
        parts.append(f'<p class="sample-name">{escape(sample.name)}{note}</p>'
                     f'<pre class="sample">{escape(sample.text)}</pre>')
    if row.note():
        parts.append(f'<p class="sample-note">{escape(row.note())}</p>')
    return "\n".join(parts)


def _link(folder: str, name: str, text: str) -> Html:
    return Html(f'<a href="{escape(quote(folder))}/{name}">{escape(text)}</a>')


def index(entries: Sequence[dict[str, str]], stamp: str) -> str:
    """The page linking every published suite; ``entries`` are what ``publish`` indexes."""
    headers = ["suite", "description", "checkpoint", "rows", "best per group", "published", "commit",
               "wall time", "files"]
    rows = [
        [_link(e["suite"], "leaderboard.html", e["suite"]), e["description"], e["checkpoint"],
         str(e["rows"]), e["best"], e["date"], e["commit"], e["wall_time"],
         Html(", ".join(_link(e["suite"], f"leaderboard.{x}", x) for x in ("md", "csv", "json")))]
        for e in entries
    ]
    sort_values = [[e["suite"], e["description"], e["checkpoint"], e["rows"], e["best"], e["date"],
                    e["commit"], e["wall_time"], ""] for e in entries]
    body = [
        "<header><h1>kdbench leaderboards</h1>",
        f'<p class="stamp">{escape(stamp)}</p></header>',
        table("suites", headers, rows, [h == "rows" for h in headers], sort_values),
    ]
    return page("kdbench leaderboards", "\n".join(body))
