"""Leaderboard numbers against values worked out by hand (see synthetic_store's docstring)."""

from __future__ import annotations

import math

import pandas as pd
import pluggy
import pytest
from scipy import stats

from kdbench import Column, Kind, Metric, hookimpl, hookspecs
from kdbench.errors import PluginError, UserError
from kdbench.leaderboard import markdown
from kdbench.leaderboard.board import Board, load_board
from kdbench.leaderboard.columns import _reproduced, columns, footnotes
from kdbench.leaderboard.metrics import higher_is_better
from kdbench.leaderboard.statistics import gap_closed, holm, seed_noise, spread, welch_p
from kdbench.suite import PaperAnchor
from kdbench.tracking import RunRecord, Tracker
from tests.synthetic_store import ERROR, ROWS, SKIP_REASON, copy, kinds, tags

T_975_2 = 4.302652729749464
"""Student's t, 97.5th percentile, 2 degrees of freedom (printed tables: 4.303)."""


def welch_by_hand(mean_a: float, std_a: float, mean_b: float, std_b: float, n: int) -> float:
    """Welch's t and Welch–Satterthwaite degrees of freedom; p from the t distribution's tail."""
    va, vb = std_a**2 / n, std_b**2 / n
    t = (mean_a - mean_b) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n - 1) + vb**2 / (n - 1))
    return 2 * stats.t.sf(abs(t), df)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list:
    uri = copy(tmp_path_factory.mktemp("store"))
    return Tracker(uri, "synthetic").runs()


@pytest.fixture(scope="module")
def board(records: list) -> Board:
    anchors = [PaperAnchor(task="toy", method="kd", value=0.9)]
    return load_board("synthetic", records, kinds(), anchors=anchors)


def row(board: Board, task: str, method: str) -> pd.Series:
    found = board.rows[(board.rows["task"] == task) & (board.rows["method"] == method)]
    assert len(found) == 1, f"{task}/{method}: {len(found)} rows"
    return found.iloc[0]


# -- the statistics, one rule at a time --------------------------------------------------


def test_spread_is_mean_sample_std_and_t_interval():
    seeds = spread([0.90, 0.92, 0.94])
    assert (seeds.n, seeds.mean, seeds.std) == (3, pytest.approx(0.92), pytest.approx(0.02))
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert (seeds.ci_low, seeds.ci_high) == (pytest.approx(0.92 - half), pytest.approx(0.92 + half))


def test_one_seed_has_a_mean_but_no_spread():
    seeds = spread([0.5])
    assert seeds.mean == 0.5 and math.isnan(seeds.std) and math.isnan(seeds.ci_low)
    assert spread([]).n == 0


def test_holm_multiplies_by_remaining_tests_and_stays_monotone():
    # sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([float("nan"), 0.02, 0.5])  # NaN is not a test: m = 2
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.04, 0.5])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_welch_matches_the_textbook_formula():
    p = welch_p([0.80, 0.82, 0.84], [0.86, 0.87, 0.88])
    assert p == pytest.approx(welch_by_hand(0.82, 0.02, 0.87, 0.01, 3))
    assert math.isnan(welch_p([0.8], [0.86, 0.87]))  # one seed: no test
    assert math.isnan(welch_p([0.8, 0.8], [0.9, 0.9]))  # no variance on either side


def test_gap_closed_takes_direction_noise_and_overshoot_into_account():
    assert gap_closed(0.87, 0.82, 0.92, True, 0.02) == pytest.approx(0.5)
    assert gap_closed(22, 32, 12, False, 2.0) == pytest.approx(0.5)  # errors: lower is better
    assert gap_closed(0.93, 0.82, 0.92, True, 0.02) == pytest.approx(1.1)  # beats the teacher: kept
    assert math.isnan(gap_closed(0.87, 0.87, 0.88, True, 0.03))  # gap 0.01 inside noise 0.03
    assert math.isnan(gap_closed(0.87, 0.90, 0.85, True, 0.0))  # teacher behind the student
    assert seed_noise(0.03, 0.03) == pytest.approx(0.03)
    assert seed_noise(float("nan"), float("nan")) == 0.0


def test_directions_come_from_the_task_its_kind_and_the_core_alone():
    declared = {"toy": Kind("toy", None, None, (Metric("accuracy", True), Metric("fd_n*", False)))}
    assert higher_is_better("test_accuracy", "toy", declared)
    assert not higher_is_better("val_fd_n4", "toy", declared)  # a pattern covers a family
    assert not higher_is_better("ndcg", "toy", declared, "ndcg", primary_higher=False)  # the task's tag wins
    assert higher_is_better("accuracy", "toy", declared, "ndcg", primary_higher=False)  # ...for its metric only
    for stat in ("params", "flops", "latency_ms"):
        assert not higher_is_better(stat, "toy", declared), stat
    with pytest.raises(UserError, match="metric 'errors' .*kind 'toy' declares no such metric"):
        higher_is_better("test_errors", "toy", declared)  # no guess from the name
    with pytest.raises(UserError, match="metric 'accuracy' .*kind 'gone' is declared by no loaded plugin"):
        higher_is_better("accuracy", "gone", declared)


# -- the board built from a synthetic MLflow store -----------------------------------------


def test_toy_group_by_hand(board: Board):
    teacher, baseline, kd = (row(board, "toy", m) for m in ("teacher", "student-only", "kd"))
    assert (teacher["mean"], teacher["std"]) == (pytest.approx(0.92), pytest.approx(0.02))
    assert teacher["n"] == 3
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert teacher["ci_low"] == pytest.approx(0.92 - half)
    assert teacher["ci_high"] == pytest.approx(0.92 + half)
    assert (kd["mean"], kd["std"]) == (pytest.approx(0.87), pytest.approx(0.01))
    assert kd["gain"] == pytest.approx(0.05)
    assert kd["gap_closed"] == pytest.approx(0.5)
    assert row(board, "toy", "fancy")["gap_closed"] == pytest.approx(1.1)
    assert row(board, "toy", "dml")["gap_closed"] == pytest.approx(0.3)  # teacher-free method
    assert (kd["test_fidelity"], kd["test_fidelity_std"]) == (pytest.approx(0.92), pytest.approx(0.02))
    assert (kd["compression"], kd["speedup"]) == (pytest.approx(100.0), pytest.approx(4.0))
    assert (teacher["compression"], teacher["role"], baseline["role"]) == (1, "teacher", "baseline")
    assert kd["paper"] == 0.9 and math.isnan(baseline["paper"])


def test_significance_against_the_kind_s_reference_kd_is_holm_corrected_within_the_group(board: Board):
    raw = {m: welch_by_hand(mean, 0.02, 0.87, 0.01, 3)
           for m, mean in (("fancy", 0.93), ("student-only", 0.82), ("dml", 0.85))}
    assert raw["fancy"] < raw["student-only"] < raw["dml"]
    adjusted = {"fancy": 3 * raw["fancy"]}
    adjusted["student-only"] = max(adjusted["fancy"], 2 * raw["student-only"])
    adjusted["dml"] = max(adjusted["student-only"], raw["dml"])
    for method, expected in adjusted.items():
        found = row(board, "toy", method)
        assert found["p_vs_reference"] == pytest.approx(raw[method])
        assert found["p_holm"] == pytest.approx(expected)
        assert found["significant"] == (expected < 0.05)
    assert math.isnan(row(board, "toy", "kd")["p_holm"])  # the reference itself
    assert math.isnan(row(board, "toy", "teacher")["p_holm"])
    assert set(board.rows["reference"]) == {"kd"}  # classification's, as its plugin declares


def test_beating_the_reference_by_more_than_its_seed_std(board: Board):
    # toy: kd (the reference) 0.87 ± 0.01; fancy +0.06 clears that, dml −0.02 and student-only −0.05 do not
    found = {m: row(board, "toy", m)["beats_reference"] for m in ("fancy", "dml", "student-only", "kd", "teacher")}
    assert found == {"fancy": True, "dml": False, "student-only": False, "kd": None, "teacher": None}
    # errors, lower is better: 27 and 32 errors against kd's 22 ± 2 are worse, whatever their sign of difference
    assert [row(board, "toy-err", m)["beats_reference"] for m in ("<script>|x", "student-only")] == [False, False]


def test_rank_within_group_excludes_the_teacher(board: Board):
    ranks = {m: row(board, "toy", m)["rank"] for m in ("fancy", "kd", "dml", "student-only")}
    assert ranks == {"fancy": 1, "kd": 2, "dml": 3, "student-only": 4}
    assert math.isnan(row(board, "toy", "teacher")["rank"])


def test_lower_is_better_metric(board: Board):
    kd = row(board, "toy-err", "kd")
    assert not kd["higher_is_better"]
    assert kd["gain"] == pytest.approx(10.0)  # 32 → 22 errors: positive gain
    assert kd["gap_closed"] == pytest.approx(0.5)
    assert row(board, "toy-err", "<script>|x")["gap_closed"] == pytest.approx(0.25)
    assert (kd["rank"], row(board, "toy-err", "<script>|x")["rank"]) == (1, 2)
    # a count shows one decimal, as its kind declares; a fraction four
    assert (kd["decimals"], row(board, "toy", "kd")["decimals"]) == (1, 4)
    assert _reproduced(kd) == f"{kd['mean']:.1f} ± {kd['std']:.1f}"


def test_gap_inside_seed_noise_is_not_a_number(board: Board):
    assert math.isnan(row(board, "toy-close", "kd")["gap_closed"])
    assert row(board, "toy-close", "kd")["gain"] == pytest.approx(0.0)


def test_skipped_shows_as_na_and_failures_are_listed_never_averaged(board: Board):
    skipped = row(board, "toy", "fitnet")
    assert (skipped["status"], skipped["reason"], skipped["n"]) == ("n/a", SKIP_REASON, 0)
    failed = row(board, "toy", "crd")
    assert (failed["status"], failed["reason"]) == ("failed", ERROR)
    assert board.failures[["method", "seed", "reason"]].values.tolist() == [["crd", 0, ERROR]]
    assert row(board, "toy", "kd")["n"] == 3  # a superseded failure is neither listed nor counted
    assert len(board.rows) == ROWS
    assert board.checkpoints == ["final"]


def test_cross_task_ranks_methods_by_mean_gap_closed(board: Board):
    table = board.cross_task.set_index("method")
    assert list(table.index[:4]) == ["fancy", "kd", "dml", "<script>|x"]
    assert table.loc["kd", "mean_gap_closed"] == pytest.approx(0.5)  # (0.5 + 0.5) / 2, one n/a
    assert (table.loc["kd", "tasks_with_gap"], table.loc["kd", "tasks"]) == (2, 3)
    assert table.loc["fitnet", "tasks"] == 1 and math.isnan(table.loc["fitnet", "rank"])


def test_suite_metric_overrides_the_primary_metric(records: list):
    board = load_board("synthetic", records, kinds(), metric="fidelity")
    kd = row(board, "toy", "kd")
    assert kd["mean"] == pytest.approx(0.92) and kd["higher_is_better"]
    teacher = row(board, "toy", "teacher")
    assert (teacher["status"], teacher["reason"]) == ("n/a", "no test_fidelity logged")


SEEDS_X10 = Column("seeds_x10", "seeds ×10", lambda r: f"{r['seeds_x10']}!", terminal=False,
                   footnote="seeds ×10 = n times ten, loudly.")


class _Plugin:
    @hookimpl
    def kdbench_leaderboard_columns(self, rows: pd.DataFrame) -> list[tuple[Column, list]]:
        return [(SEEDS_X10, [n * 10 for n in rows["n"]])]


def _manager(*plugins: object) -> pluggy.PluginManager:
    manager = pluggy.PluginManager("kdbench")
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def test_plugins_add_columns_through_the_hook(records: list):
    board = load_board("synthetic", records, kinds(), hook=_manager(_Plugin()).hook)
    assert board.extra_columns == [SEEDS_X10]
    assert row(board, "toy", "kd")["seeds_x10"] == 30
    page = markdown.render(board, "stamp")
    assert "| seeds ×10 |" in page and "| 30! |" in page and "- seeds ×10 = n times ten, loudly." in page
    assert SEEDS_X10 in columns(board) and SEEDS_X10 not in columns(board, terminal=True)
    assert SEEDS_X10.footnote in footnotes(board) and SEEDS_X10.footnote not in footnotes(board, terminal=True)


def test_a_plugin_column_must_be_a_column_object(records: list):
    class Named:
        @hookimpl
        def kdbench_leaderboard_columns(self) -> dict[str, list]:
            return {"seeds": [0] * ROWS}  # the hook's old return value

    with pytest.raises(PluginError, match=r"\(kdbench.Column, values\) pairs"):
        load_board("synthetic", records, kinds(), hook=_manager(Named()).hook)


def test_a_plugin_column_may_not_replace_a_built_in_one(records: list):
    class Clash:
        @hookimpl
        def kdbench_leaderboard_columns(self) -> list[tuple[Column, list]]:
            return [(Column("mean", "mean"), [0] * ROWS)]

    with pytest.raises(PluginError, match="'mean'"):
        load_board("synthetic", records, kinds(), hook=_manager(Clash()).hook)


def _record(run: int, teacher: str, student: str, method: str, value: float) -> RunRecord:
    role = "teacher" if method == "teacher" else ("student" if teacher == "-" else "distill")
    run_tags = {**tags("toy", "kd", run), "kdbench.teacher": teacher, "kdbench.student": student,
                "kdbench.method": method, "kdbench.variant": method, "kdbench.role": role}
    return RunRecord(str(run), "FINISHED", run_tags, {"test_accuracy": value}, {}, run, run)


def test_several_teachers_are_each_a_reference_and_the_best_one_sets_the_gap():
    board = load_board("multi", [
        _record(1, "a", "-", "teacher", 0.90), _record(2, "b", "-", "teacher", 0.95),
        _record(3, "-", "s", "student-only", 0.70), _record(4, "a+b", "s", "mtkd", 0.85),
    ], kinds())
    assert list(board.rows["method"]) == ["teacher a", "teacher b", "student-only", "mtkd"]
    assert row(board, "toy", "mtkd")["gap_closed"] == pytest.approx((0.85 - 0.70) / (0.95 - 0.70))


def test_a_kind_s_own_baseline_method_is_the_reference_for_gain_and_gap():
    """Step distillation's baseline is the teacher sampled with few steps ('ddim-n'), a run with a teacher."""
    records = [_record(1, "big", "-", "teacher", 10.0), _record(2, "big", "s", "ddim-n", 50.0),
               _record(3, "big", "s", "progressive", 20.0)]
    for record in records:
        record.tags.update({"kdbench.kind": "denoising", "kdbench.higher_is_better": "false",
                            "kdbench.primary_metric": "fd"})
        record.metrics["test_fd"] = record.metrics.pop("test_accuracy")
    board = load_board("steps", records, kinds())
    assert list(board.rows["role"]) == ["teacher", "baseline", "method"]
    progressive = row(board, "toy", "progressive")
    assert progressive["gain"] == pytest.approx(30.0)  # lower is better: 50 → 20
    assert progressive["gap_closed"] == pytest.approx((50 - 20) / (50 - 10))
    assert "Rows 'teacher' and 'ddim-n' (the baseline" in markdown.render(board, "stamp")
    unloaded = load_board("steps", records, {})  # the kind's plugin is not loaded: shown, nothing to compare with
    assert list(unloaded.rows["role"]) == ["teacher", "method", "method"]
    assert unloaded.rows["gain"].isna().all() and unloaded.rows["p_holm"].isna().all()
    assert row(unloaded, "toy", "progressive")["mean"] == 20.0


def test_an_empty_board_still_renders():
    board = load_board("empty", [], kinds())
    assert board.rows.empty and board.cross_task.empty
    assert "| task | teacher |" in markdown.render(board, "stamp")
