"""The method-contract change left every number where it was.

``tests/equality/*-before.json`` were written by the code before the change (commit inside
each); the smoke suite is checked against its record in ``test_smoke.py``, the suite of every
method whose training the change rewrote here. Both run on one thread, as recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.equality.record import ACROSS_MACHINES, ALLOWANCES, Allowance, differences, machine, record, tolerance

RECORDS = Path(__file__).parent / "equality"


@pytest.mark.slow
def test_every_rewritten_method_gives_the_metrics_the_old_code_recorded(require_data):
    require_data("ml-100k", "u.data")
    require_data("planetoid", "Cora/raw/ind.cora.x")
    before = json.loads((RECORDS / "contract-before.json").read_text())
    after = record(RECORDS / "contract.yaml")
    assert {key.split("|")[3] for key in after} == {
        "student-only", "kd", "score-kd", "rd", "cd", "rrd", "de", "glnn", "lsp", "dml", "ban", "takd", "ddim-n",
        "progressive", "consistency", "teacher"}
    assert differences(before["runs"], after, within=tolerance(before)) == []


def test_the_check_reports_changed_missing_and_new_metrics_and_runs():
    before = {"t|a|b|kd|0": {"test_accuracy": 0.5, "train_loss": 1.0, "val_nll": float("nan")},
              "t|a|b|fitnets|0": {"test_accuracy": 0.25}}
    same = json.loads(json.dumps(before))
    assert differences(before, same) == []
    changed = {"t|a|b|kd|0": {"test_accuracy": 0.5 + 1e-12, "val_nll": float("nan"), "extra": 1.0},
               "t|a|b|dkd|0": {"test_accuracy": 0.3}}
    assert differences(before, changed) == [
        "t|a|b|fitnets|0: run missing",
        "t|a|b|dkd|0: run not in the record",
        "t|a|b|kd|0: train_loss missing",
        "t|a|b|kd|0: extra not in the record",
        f"t|a|b|kd|0: test_accuracy was 0.5, is {0.5 + 1e-12!r}",
    ]


def test_another_machine_gets_a_relative_tolerance_and_the_recording_one_none():
    before = {"t|a|b|kd|0": {"test_accuracy": 0.5, "val_ece": 0.0187}}
    after = {"t|a|b|kd|0": {"test_accuracy": 0.5, "val_ece": 0.0187 * (1 + 4.4e-5)}}
    here, elsewhere = {"machine": machine(), "runs": before}, {"machine": "a machine that is not this one"}
    assert (tolerance(here), tolerance(elsewhere), tolerance({})) == (0.0, ACROSS_MACHINES, ACROSS_MACHINES)
    assert differences(before, after, within=tolerance(here)) == [
        f"t|a|b|kd|0: val_ece was 0.0187, is {0.0187 * (1 + 4.4e-5)!r}"]
    assert differences(before, after, within=tolerance(elsewhere)) == []
    after["t|a|b|kd|0"]["test_accuracy"] = 0.5 * (1 + 2 * ACROSS_MACHINES)  # beyond it, even elsewhere
    assert differences(before, after, within=ACROSS_MACHINES) == [
        f"t|a|b|kd|0: test_accuracy was 0.5, is {0.5 * (1 + 2 * ACROSS_MACHINES)!r}"]


def test_allowances_cover_only_their_method_and_never_a_test_metric():
    allowed = {"progressive": Allowance("why", renamed={"loss": "train_loss"}, added=frozenset({"curve"}),
                                        resummed=r"stage\d*_loss")}
    before = {"t|a|b|progressive|0": {"loss": 1.0, "stage1_loss": 2.0, "test_fd": 3.0},
              "t|a|b|kd|0": {"loss": 1.0}}
    after = {"t|a|b|progressive|0": {"train_loss": 1.0 + 1e-8, "stage1_loss": 2.0 * (1 + 1e-7), "test_fd": 3.0,
                                     "curve": 5.0},
             "t|a|b|kd|0": {"train_loss": 1.0}}
    assert differences(before, after, allowed) == ["t|a|b|kd|0: loss missing",
                                                   "t|a|b|kd|0: train_loss not in the record"]
    after["t|a|b|progressive|0"]["test_fd"] = 3.0 * (1 + 1e-7)  # a test metric is never within a tolerance
    after["t|a|b|progressive|0"]["stage1_loss"] = 2.1
    assert differences(before, after, allowed)[-2:] == [
        "t|a|b|progressive|0: stage1_loss was 2.0, is 2.1",
        f"t|a|b|progressive|0: test_fd was 3.0, is {3.0 * (1 + 1e-7)!r}",
    ]
    assert all(not name.startswith("test_") for a in ALLOWANCES.values() for name in (*a.renamed, *a.added))
