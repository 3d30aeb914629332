"""The HTML page: names escaped, nothing fetched, and it renders and sorts in a real browser.

The browser is Debian's ``chromium``, run headless. The session fixture installs it with
apt when it is missing; where that fails the browser tests are skipped with the reason,
except under ``KDBENCH_REQUIRE_DATA=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kdbench.leaderboard import markdown
from kdbench.leaderboard.board import Board, load_board
from kdbench.leaderboard.columns import columns
from kdbench.leaderboard.publish import Stamp, publish_suite
from kdbench.tracking import Tracker
from tests.html_tables import table_rows
from tests.synthetic_store import ROWS, copy, kinds

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="alert(1)"> & | *bold*'


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    return Tracker(copy(tmp_path_factory.mktemp("store")), "synthetic")


@pytest.fixture(scope="module")
def board(tracker: Tracker) -> Board:
    return load_board(HOSTILE, tracker.runs(), kinds())


@pytest.fixture(scope="module")
def page(board: Board, tracker: Tracker, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("published")
    stamp = Stamp("0.1.0", "abc123", "kdbench publish synthetic", "2026-01-01 00:00:00 UTC")
    publish_suite(board, folder, stamp, tracker.history, description=HOSTILE)
    return folder / "leaderboard.html"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path, installed with apt-get when absent."""
    if not Path(CHROMIUM).is_file() and shutil.which("apt-get"):
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(command, capture_output=True, timeout=900, check=False)
    if not Path(CHROMIUM).is_file():
        message = f"{CHROMIUM} is missing and 'apt-get install -y chromium' did not provide it"
        if os.environ.get("KDBENCH_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def browse(chromium: str, target: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1600,1400", *flags, target.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_names_are_text_in_html_and_markdown(board: Board, page: Path):
    html = page.read_text()
    assert "<script>|x" not in html and "<img src=x" not in html
    assert "&lt;script&gt;|x" in html
    methods = [cells[3] for cells in table_rows(html, "leaderboard")]  # entities decoded
    assert "<script>|x" in methods
    md = page.with_name("leaderboard.md").read_text()
    assert "&lt;script&gt;\\|x" in md and "<script>" not in md
    assert markdown.escape(HOSTILE) == '&lt;img src=x onerror="alert(1)"&gt; &amp; \\| \\*bold\\*'


def test_the_page_needs_no_network(page: Path):
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<style>" in html and "<script>" in html and "data:image/png;base64," in html


def test_chromium_renders_every_row(chromium: str, page: Path, tmp_path: Path):
    shot = tmp_path / "page.png"
    browse(chromium, page, tmp_path / "profile", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = browse(chromium, page, tmp_path / "profile", "--dump-dom").stdout
    rows = table_rows(dom, "leaderboard")
    assert len(rows) == ROWS
    assert len(table_rows(dom, "cross-task")) == 6 and len(table_rows(dom, "failures")) == 1


def _click(page: Path, target: Path, column: int, times: int) -> None:
    """A copy of the page that clicks a header ``times`` times once it has loaded."""
    clicks = f"var th = document.querySelectorAll('#leaderboard th')[{column}];"
    clicks += "th.click();" * times
    target.write_text(page.read_text().replace("</body>", f"<script>{clicks}</script></body>"))


def test_clicking_a_header_sorts_and_a_third_click_restores(
        chromium: str, board: Board, page: Path, tmp_path: Path):
    rank = [c.header for c in columns(board)].index("rank")
    published = [cells[3] for cells in table_rows(page.read_text(), "leaderboard")]
    orders = []
    for times in (1, 2, 3):
        clicked = tmp_path / f"clicked{times}.html"
        _click(page, clicked, rank, times)
        dom = browse(chromium, clicked, tmp_path / "profile", "--dump-dom").stdout
        orders.append(table_rows(dom, "leaderboard"))
    ascending = [int(cells[rank]) for cells in orders[0] if cells[rank]]
    descending = [int(cells[rank]) for cells in orders[1] if cells[rank]]
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert all(cells[rank] == "" for cells in orders[0][len(ascending):])  # unranked rows last
    assert [cells[3] for cells in orders[2]] == published
