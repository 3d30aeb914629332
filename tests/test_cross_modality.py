"""The index's cross-modality board (issue #17), on leaderboard.json files written by hand.

The expected numbers are worked out here from the files' rows, by the rule the board states:
a (task, teacher, student) pair published by several suites counts once (their mean), a task's
pairs are averaged, then a method's tasks; the per-modality columns average that modality's tasks.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from kdbench.leaderboard.publish import SCHEMA, Stamp, cross_modality, write_index
from tests.html_tables import table_rows

STAMP = Stamp("0.1.0", "1ndex0", "kdbench publish x.yaml", "2026-01-02 03:04:05 UTC")


def row(task: str, method: str, gap: float | None, student: str = "small", teacher: str = "big",
        role: str = "method") -> dict[str, object]:
    return {"task": task, "teacher": teacher, "student": student, "method": method, "role": role,
            "gap_closed": gap, "rank": None}


def references(task: str, student: str = "small", teacher: str = "big") -> list[dict[str, object]]:
    """The teacher and baseline rows every group has: they have no gap closed and must not count."""
    return [row(task, "teacher", None, student, teacher, "teacher"),
            row(task, "student-only", None, student, teacher, "baseline")]


SUITES: dict[str, dict[str, object]] = {
    "vis": {"modalities": {"t-img": "vision", "t-img2": "vision"}, "rows": [
        *references("t-img"), row("t-img", "kd", 0.5), row("t-img", "fitnets", 0.2), row("t-img", "at", None),
        *references("t-img", "tiny"), row("t-img", "kd", 0.7, "tiny"), row("t-img", "fitnets", 0.4, "tiny"),
        *references("t-img2"), row("t-img2", "kd", 0.1), row("t-img2", "fitnets", 0.6)]},
    "again": {"modalities": {"t-img": "vision"}, "rows": [*references("t-img"), row("t-img", "kd", 0.3)]},
    "graphs": {"rows": [  # written before the JSON recorded modalities: placed by the index's caller
        *references("cora", "mlp", "sage"), row("cora", "kd", 0.9, "mlp", "sage"),
        row("cora", "glnn", 0.8, "mlp", "sage")]},
}
FALLBACK = {"cora": "graph", "t-img": "speech"}  # the JSON's own word wins where it has one

# worked out by hand from SUITES
KD_TASKS = {"t-img": ((0.5 + 0.3) / 2 + 0.7) / 2, "t-img2": 0.1, "cora": 0.9}
FITNETS_TASKS = {"t-img": (0.2 + 0.4) / 2, "t-img2": 0.6}
EXPECTED = {  # method: (mean, tasks, pairs, mean graph, mean vision)
    "kd": (sum(KD_TASKS.values()) / 3, 3, 4, 0.9, (KD_TASKS["t-img"] + 0.1) / 2),
    "fitnets": (sum(FITNETS_TASKS.values()) / 2, 2, 3, math.nan, sum(FITNETS_TASKS.values()) / 2),
    "glnn": (0.8, 1, 1, 0.8, math.nan),
}


def published(out: Path) -> list[dict[str, object]]:
    """Write ``SUITES`` as each suite's leaderboard.json under ``out``; returns private copies of the records."""
    records = []
    for name, record in SUITES.items():
        folder = out / name
        folder.mkdir(parents=True)
        full = {"schema": SCHEMA, "suite": name, "stamp": {"commit": f"{name}-c0mm1t", "date": "d", "command": name},
                "run_commits": [f"{name}-runs"], **copy.deepcopy(record)}
        (folder / "leaderboard.json").write_text(json.dumps(full))
        records.append(full)
    return records


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_methods_are_ranked_by_their_mean_over_tasks_with_per_modality_means(tmp_path: Path):
    board = cross_modality(published(tmp_path), FALLBACK)
    ranking = sorted(EXPECTED, key=lambda m: -EXPECTED[m][0])
    assert list(board["method"]) == ranking == ["glnn", "kd", "fitnets"]
    assert list(board["rank"]) == [1, 2, 3]
    assert [c for c in board.columns if c.startswith("mean ")] == ["mean graph", "mean vision"]
    for _, got in board.iterrows():
        mean, tasks, pairs, graph, vision = EXPECTED[got["method"]]
        assert (got["tasks"], got["pairs"]) == (tasks, pairs)
        assert same(got["mean_gap_closed"], mean) and same(got["mean graph"], graph)
        assert same(got["mean vision"], vision), got["method"]
        if tasks == 1:
            assert math.isnan(got["ci_low"]) and math.isnan(got["ci_high"])
        else:
            values = (KD_TASKS if got["method"] == "kd" else FITNETS_TASKS).values()
            assert min(values) <= got["ci_low"] <= mean <= got["ci_high"] <= max(values)
            assert got["ci_low"] < got["ci_high"]
    again = cross_modality(published(tmp_path / "again"), FALLBACK)
    assert again.equals(board), "seeded: the same files give the same intervals"


def test_a_method_s_interval_does_not_move_when_another_method_joins(tmp_path: Path):
    records = published(tmp_path)
    alone = cross_modality(records, FALLBACK).set_index("method")
    records[0]["rows"].append(row("t-img2", "new-method", 0.05))
    joined = cross_modality(records, FALLBACK).set_index("method")
    assert joined.loc["kd", ["ci_low", "ci_high"]].tolist() == alone.loc["kd", ["ci_low", "ci_high"]].tolist()
    assert joined.loc["new-method", "rank"] == 4


def test_a_task_nothing_places_is_unknown(tmp_path: Path):
    board = cross_modality(published(tmp_path))
    assert "mean unknown" in board.columns and "mean speech" not in board.columns
    assert board.set_index("method").loc["glnn", "mean unknown"] == pytest.approx(0.8)


def test_the_index_and_readme_show_the_board(tmp_path: Path):
    published(tmp_path)
    listed, skipped = write_index(tmp_path, STAMP, FALLBACK)
    assert sorted(listed) == sorted(SUITES) and not skipped
    rows = table_rows((tmp_path / "index.html").read_text(), "cross-modality")
    # columns: rank, method, mean, interval, tasks, pairs, mean graph, mean vision
    assert [r[1] for r in rows] == ["glnn", "kd", "fitnets"]
    for cells in rows:
        mean, tasks, pairs, graph, vision = EXPECTED[cells[1]]
        assert cells[2] == f"{mean:.2f}" and cells[4:6] == [str(tasks), str(pairs)]
        assert cells[6:] == ["n/a" if math.isnan(v) else f"{v:.2f}" for v in (graph, vision)]
        assert (cells[3] == "n/a") == (tasks == 1)
    readme = (tmp_path / "README.md").read_text()
    board = readme[readme.index("## Across modalities"):]
    kd = next(line for line in board.splitlines() if line.startswith("| 2 | kd |"))
    assert f"| {EXPECTED['kd'][0]:.2f} |" in kd and "| 3 | 4 |" in kd
    assert "bootstrap over tasks (2000 resamples" in board
    suites = {r[0]: r for r in table_rows((tmp_path / "index.html").read_text(), "suites")}
    assert suites["graphs"][6] == "runs: graphs-runs" and "graphs-c0mm1t" in suites["graphs"][5]


def test_no_gap_closed_anywhere_leaves_the_board_out(tmp_path: Path):
    folder = tmp_path / "only-references"
    folder.mkdir()
    (folder / "leaderboard.json").write_text(json.dumps({"schema": SCHEMA, "rows": references("t")}))
    write_index(tmp_path, STAMP)
    assert "Across modalities" not in (tmp_path / "README.md").read_text()
    assert "cross-modality" not in (tmp_path / "index.html").read_text()
