"""The smoke suite end to end: every registered modality, through the CLI, as CI runs it — and every
metric it logs equal to what the code before the method-contract change recorded (one thread)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kdbench.registry import Registry
from tests.conftest import REPO
from tests.equality.record import differences, metrics_by_run, tolerance


@pytest.mark.smoke
def test_smoke_suite_end_to_end(cli, isolated: Path, require_data, monkeypatch: pytest.MonkeyPatch):
    require_data("fsdd", "MANIFEST.tsv")  # the speech case
    require_data("planetoid", "Cora/raw/ind.cora.x")  # the graph case
    require_data("ml-100k", "u.data")  # the recommender case
    monkeypatch.setenv("KDBENCH_THREADS", "1")  # as the record was made
    code, out, err = cli("run", REPO / "suites" / "smoke.yaml")
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED" and "kdbench.skipped" not in r.data.tags]
    assert len(finished) == len(runs), "no run of the smoke suite may fail or be skipped"
    modalities = {r.data.tags["kdbench.modality"] for r in finished}
    assert {"vision", "speech", "graph", "recommender", "points", "crossmodal", "text"} <= modalities
    kinds = {r.data.tags["kdbench.kind"] for r in finished}
    assert kinds == {"classification", "ranking", "denoising", "dense", "language-modeling"}, "every kind, end to end"
    declared = Registry.load().kinds.entries
    for run in finished:
        primary = run.data.tags["kdbench.primary_metric"]
        assert f"test_{primary}" in run.data.metrics
        kind = declared[run.data.tags["kdbench.kind"]]
        undeclared = [m for m in run.data.metrics if m.startswith("test_") and kind.metric(m[len("test_"):]) is None]
        assert not undeclared, f"{kind.name} declares no direction for {undeclared}"
    before = json.loads((REPO / "tests" / "equality" / "smoke-before.json").read_text())
    recorded = {key.split("|")[0] for key in before["runs"]}  # the tasks of the cases that existed then
    after = metrics_by_run(f"sqlite:///{isolated / 'mlflow.db'}")
    kept = {key: m for key, m in after.items() if key.split("|")[0] in recorded}
    assert differences(before["runs"], kept, within=tolerance(before)) == []
    # and a second invocation trains nothing
    code, out, err = cli("run", REPO / "suites" / "smoke.yaml")
    assert code == 0 and f"{len(runs)}/{len(runs)} runs already finished, skipped" in err
