"""Issue #17 on the board: log-scale intervals for positive metrics, the verdicts on a suite's paper
claims, and the convergence column with its under-trained flag.

Every expected number is worked out here from the seeds (numpy, scipy), not read off the board.
"""

from __future__ import annotations

import math
import statistics as py_stats

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from kdbench.leaderboard import html, markdown
from kdbench.leaderboard.board import NOT_REPRODUCED, REPRODUCED, UNTESTED, Board, load_board
from kdbench.leaderboard.columns import _ci, columns, footnotes
from kdbench.leaderboard.statistics import spread
from kdbench.suite import PaperAnchor
from kdbench.tracking import RunRecord
from tests.synthetic_store import kinds, tags

# -- helpers: run records written as the runner tags them, and histories beside them ------------


def records(values: dict[str, list[float]], task: str = "toy") -> list[RunRecord]:
    """One FINISHED run per (method, seed) with the given final test values; run ids 'method/seed'."""
    metric = {"toy": "accuracy", "toy-err": "errors"}[task]
    found = []
    for method, seeds in values.items():
        for seed, value in enumerate(seeds):
            run = f"{method}/{seed}"
            found.append(RunRecord(run, "FINISHED", {**tags(task, method, seed), "kdbench.config_hash": run},
                                   {f"test_{metric}": value}, {}, len(found), len(found)))
    return found


def history_of(curves: dict[str, list[list[float]]], metric: str = "accuracy"):
    """A ``Tracker.history`` stand-in: method -> one validation curve (epochs 1, 2, ...) per seed."""
    table = {(f"{method}/{seed}", f"val_{metric}"): list(enumerate(curve, start=1))
             for method, seeds in curves.items() for seed, curve in enumerate(seeds)}
    return lambda run, key: table.get((run, key), [])


def row(board: Board, method: str) -> pd.Series:
    found = board.rows[board.rows["method"] == method]
    assert len(found) == 1, f"{method}: {len(found)} rows"
    return found.iloc[0]


def welch(a: list[float], b: list[float]) -> float:
    """Welch's two-sided p from the textbook formula (Welch–Satterthwaite degrees of freedom)."""
    va, vb = py_stats.variance(a) / len(a), py_stats.variance(b) / len(b)
    t = (py_stats.mean(a) - py_stats.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


def log_interval(values: list[float]) -> tuple[float, float]:
    logs = [math.log(v) for v in values]
    half = stats.t.ppf(0.975, len(logs) - 1) * py_stats.stdev(logs) / math.sqrt(len(logs))
    return math.exp(py_stats.mean(logs) - half), math.exp(py_stats.mean(logs) + half)


# -- 1. an interval that respects a positive metric ---------------------------------------------

SPREAD_OUT = [10.0, 50.0, 300.0]
"""Three seeds of a Fréchet distance: mean ± t·s/√n reaches far below 0."""


def test_a_positive_metric_s_interval_is_the_exponentiated_t_interval_of_the_logs():
    plain, positive = spread(SPREAD_OUT), spread(SPREAD_OUT, positive=True)
    assert plain.ci_low < 0  # the nonsense this fixes
    low, high = log_interval(SPREAD_OUT)
    assert (positive.ci_low, positive.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert 0 < positive.ci_low < positive.ci_high < math.inf
    assert (positive.mean, positive.std) == (pytest.approx(plain.mean), pytest.approx(plain.std))
    assert math.isnan(spread([0.0, 1.0, 2.0], positive=True).ci_low)  # a 0 has no log: no interval


def test_the_denoising_kind_s_fd_gets_the_log_interval_on_the_board():
    runs = records({"teacher": [5.0, 6.0, 7.0], "progressive": SPREAD_OUT})
    for record in runs:
        record.tags.update({"kdbench.kind": "denoising", "kdbench.higher_is_better": "false",
                            "kdbench.primary_metric": "fd"})
        record.metrics["test_fd"] = record.metrics.pop("test_accuracy")
    board = load_board("steps", runs, kinds())
    progressive = row(board, "progressive")
    low, high = log_interval(SPREAD_OUT)
    assert progressive["positive"] and 0 < progressive["ci_low"]
    assert (progressive["ci_low"], progressive["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert _ci(progressive) == f"[{low:.4f}, {high:.4f}]"
    assert any("exp of the t-interval of the seeds' logs" in note for note in footnotes(board))
    accuracy = load_board("toy", records({"teacher": [0.9, 0.92, 0.94]}), kinds())
    assert not row(accuracy, "teacher")["positive"]  # a metric nobody declares positive: as before
    assert not any("seeds' logs" in note for note in footnotes(accuracy))


# -- 2. reproduction verdicts ------------------------------------------------------------------

SEEDS = {
    "teacher": [0.90, 0.92, 0.94],
    "student-only": [0.80, 0.81, 0.82],
    "kd": [0.86, 0.87, 0.88],  # clearly ahead of student-only
    "close": [0.80, 0.83, 0.86],  # ahead on average, inside the noise
    "worse": [0.70, 0.71, 0.72],
    "single": [0.95],  # one seed: no test
}


def judged(*anchors: PaperAnchor, values: dict[str, list[float]] = SEEDS) -> Board:
    return load_board("claims", records(values), kinds(), anchors=list(anchors))


def verdict(board: Board, method: str) -> pd.Series:
    found = board.verdicts[board.verdicts["method"] == method]
    assert len(found) == 1, found
    return found.iloc[0]


@pytest.mark.parametrize(("paper", "tolerance"), [(0.93, 0.02), (0.96, 0.02), (0.96, 0.05)])
def test_within_the_paper_s_value(paper: float, tolerance: float):
    board = judged(PaperAnchor(task="toy", method="teacher", value=paper, within=tolerance))
    mean = py_stats.mean(SEEDS["teacher"])
    expected = REPRODUCED if abs(mean - paper) <= tolerance else NOT_REPRODUCED
    found = verdict(board, "teacher")
    assert found["verdict"] == expected == row(board, "teacher")["verdict"]
    assert (found["measured"], found["target"]) == (pytest.approx(mean), paper)
    assert row(board, "teacher")["paper"] == paper


@pytest.mark.parametrize("tolerance", [0.06, 0.04])
def test_within_another_row_s_measured_mean(tolerance: float):
    board = judged(PaperAnchor(task="toy", method="kd", within=tolerance, of="teacher"))
    distance = abs(py_stats.mean(SEEDS["kd"]) - py_stats.mean(SEEDS["teacher"]))
    found = verdict(board, "kd")
    assert found["target"] == pytest.approx(py_stats.mean(SEEDS["teacher"]))
    assert found["verdict"] == (REPRODUCED if distance <= tolerance else NOT_REPRODUCED)
    assert math.isnan(row(board, "kd")["paper"])  # a claim without a value shows no paper number


@pytest.mark.parametrize("method", ["kd", "close", "worse"])
def test_better_than_needs_the_better_mean_and_welch_p_below_0_05(method: str):
    board = judged(PaperAnchor(task="toy", method=method, direction="better-than student-only"))
    p = welch(SEEDS[method], SEEDS["student-only"])
    better = py_stats.mean(SEEDS[method]) > py_stats.mean(SEEDS["student-only"])
    found = verdict(board, method)
    assert found["p"] == pytest.approx(p) and row(board, method)["verdict_p"] == pytest.approx(p)
    assert found["verdict"] == (REPRODUCED if better and p < 0.05 else NOT_REPRODUCED)
    assert {"kd": REPRODUCED, "close": NOT_REPRODUCED, "worse": NOT_REPRODUCED}[method] == found["verdict"]


def test_better_than_on_a_lower_is_better_metric():
    values = {"teacher": [10, 12, 14], "student-only": [30, 32, 34], "kd": [20, 21, 22]}
    board = load_board("errors", records(values, "toy-err"), kinds(), anchors=[
        PaperAnchor(task="toy-err", method="kd", direction="better-than student-only"),
        PaperAnchor(task="toy-err", method="student-only", direction="better-than kd")])
    assert welch(values["kd"], values["student-only"]) < 0.05
    assert verdict(board, "kd")["verdict"] == REPRODUCED  # fewer errors is better
    assert verdict(board, "student-only")["verdict"] == NOT_REPRODUCED


@pytest.mark.parametrize("share", [0.5, 0.6])
def test_gap_closed_at_least(share: float):
    board = judged(PaperAnchor(task="toy", method="kd", gap_closed=share))
    means = {m: py_stats.mean(SEEDS[m]) for m in ("teacher", "student-only", "kd")}
    gap = (means["kd"] - means["student-only"]) / (means["teacher"] - means["student-only"])
    found = verdict(board, "kd")
    assert found["gap_closed"] == pytest.approx(gap)
    assert found["verdict"] == (REPRODUCED if gap >= share else NOT_REPRODUCED)


def test_every_tolerance_of_an_anchor_must_hold():
    both = judged(PaperAnchor(task="toy", method="kd", direction="better-than student-only", gap_closed=0.5))
    assert verdict(both, "kd")["verdict"] == REPRODUCED
    one_fails = judged(PaperAnchor(task="toy", method="kd", direction="better-than student-only", gap_closed=0.9))
    assert verdict(one_fails, "kd")["verdict"] == NOT_REPRODUCED


def test_a_claim_without_the_numbers_it_needs_is_untested():
    board = judged(PaperAnchor(task="toy", method="single", direction="better-than student-only"),
                   PaperAnchor(task="toy", method="ghost", direction="better-than student-only"),
                   PaperAnchor(task="toy", method="kd", direction="better-than nobody"))
    assert verdict(board, "single")["verdict"] == UNTESTED  # one seed: no Welch test
    assert verdict(board, "ghost")["verdict"] == UNTESTED  # never run: still listed
    assert "no row of this board" in verdict(board, "ghost")["detail"]
    assert verdict(board, "kd")["verdict"] == UNTESTED
    worse_single = judged(PaperAnchor(task="toy", method="worse", direction="better-than single"))
    assert verdict(worse_single, "worse")["verdict"] == NOT_REPRODUCED  # behind: no p-value can save it


def test_verdicts_reach_every_rendering_and_the_exported_rows():
    from kdbench.console import summary_table
    from kdbench.leaderboard.publish import rows_frame

    board = judged(PaperAnchor(task="toy", method="kd", direction="better-than student-only", source="Doe 2020"),
                   PaperAnchor(task="toy", method="worse", direction="better-than student-only"))
    assert "verdict" in [c.key for c in columns(board, terminal=True)]
    page = markdown.render(board, "stamp")
    assert "| reproduced |" in page and "| not reproduced |" in page
    claim = "Paper claim, toy · big → small · kd: better than student-only (Welch p < 0.05) — REPRODUCED"
    assert any(note.startswith(claim) for note in footnotes(board))  # and so in the published JSON's notes
    assert markdown.escape(claim) in page
    assert "Doe 2020" in page
    assert "not reproduced" in html.render(board, "stamp")
    console = Console(record=True, width=220)
    console.print(summary_table(board))
    text = console.export_text()
    assert "not reproduced" in text and "Paper claim" in text
    exported = rows_frame(board).set_index("method")
    assert "claims" not in exported  # internal
    assert exported.loc["kd", "verdict"] == REPRODUCED and exported.loc["worse", "verdict"] == NOT_REPRODUCED
    assert exported.loc["kd", "verdict_p"] == pytest.approx(welch(SEEDS["kd"], SEEDS["student-only"]))
    assert "p 0.00" in exported.loc["kd", "verdict_detail"] or "p <0.001" in exported.loc["kd", "verdict_detail"]
    plain = judged()  # no claims: no verdict column
    assert "verdict" not in [c.key for c in columns(plain)]


# -- 3. convergence ----------------------------------------------------------------------------

FINAL = {"teacher": [0.90, 0.92, 0.94], "student-only": [0.80, 0.81, 0.82], "kd": [0.86, 0.87, 0.88]}


def least_squares_slope(curve: list[float], last: int = 3) -> float:
    epochs = np.arange(1, len(curve) + 1)[-last:]
    return float(np.polyfit(epochs, np.asarray(curve)[-last:], 1)[0])


def converged(baseline: list[list[float]]) -> Board:
    curves = {"teacher": [[0.5, 0.9, 0.9, 0.9]] * 3, "student-only": baseline, "kd": [[0.4, 0.8, 0.86, 0.87]] * 3}
    return load_board("curves", records(FINAL), kinds(), history=history_of(curves))


def test_a_flat_baseline_is_not_flagged():
    flat = [[0.3, 0.6, 0.81, 0.81, 0.81], [0.3, 0.6, 0.80, 0.81, 0.80], [0.3, 0.6, 0.82, 0.82, 0.82]]
    board = converged(flat)
    baseline = row(board, "student-only")
    expected = py_stats.mean(least_squares_slope(c) for c in flat)  # the early rise is not in the last 3
    assert baseline["val_slope"] == pytest.approx(expected, abs=1e-12)
    assert not baseline["still_improving"]
    assert not any("Under-trained" in note for note in footnotes(board))
    assert "Under-trained" not in markdown.render(board, "stamp")


def test_a_rising_baseline_is_flagged_with_its_least_squares_slope():
    rising = [[0.6, 0.65, 0.71, 0.76, 0.80], [0.6, 0.66, 0.70, 0.75, 0.81], [0.6, 0.64, 0.72, 0.77, 0.82]]
    board = converged(rising)
    baseline = row(board, "student-only")
    expected = py_stats.mean(least_squares_slope(c) for c in rising)
    assert baseline["val_slope"] == pytest.approx(expected)
    assert expected > py_stats.stdev(FINAL["student-only"])  # the rule the flag follows, by hand
    assert baseline["still_improving"]
    notes = [note for note in footnotes(board) if note.startswith("Under-trained")]
    assert notes == [f"Under-trained: the baseline is still improving by {expected:.3g} per epoch "
                     "(toy · small: 'student-only', val_accuracy over its last 3 epochs, more than its seed "
                     f"std {py_stats.stdev(FINAL['student-only']):.3g}); more epochs may change the comparison."]
    page = markdown.render(board, "stamp")
    assert page.index("Under-trained") < page.index("| task |")  # in the header, above the table
    assert "val slope/epoch" in page and f"{expected:+.3g}" in page
    assert "Under-trained" in html.render(board, "stamp")


def test_improving_is_read_in_the_metric_s_direction():
    final = {"teacher": [10, 12, 14], "student-only": [30, 31, 32]}
    falling = [[60, 50, 40, 31]] * 3  # errors going down: still improving
    rising = [[20, 25, 30, 31]] * 3
    for curve, flagged in ((falling, True), (rising, False)):
        board = load_board("errors", records(final, "toy-err"), kinds(),
                           history=history_of({"student-only": curve}, "errors"))
        baseline = row(board, "student-only")
        assert baseline["val_slope"] == pytest.approx(least_squares_slope(curve[0]))
        assert bool(baseline["still_improving"]) is flagged


def test_a_slope_inside_the_seed_noise_and_no_history_are_not_flagged():
    slow = [[0.795, 0.80, 0.805]] * 3  # +0.005 per epoch, below the final values' std 0.01
    assert not row(converged(slow), "student-only")["still_improving"]
    board = load_board("curves", records(FINAL), kinds())  # no history: an empty, hidden column
    assert board.rows["val_slope"].isna().all()
    assert "val_slope" not in [c.key for c in columns(board)]
