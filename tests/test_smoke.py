"""The smoke suite end to end: every registered modality, through the CLI, as CI runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO


@pytest.mark.slow
def test_smoke_suite_end_to_end(cli, isolated: Path, require_data):
    require_data("fsdd", "MANIFEST.tsv")  # the speech case
    require_data("planetoid", "Cora/raw/ind.cora.x")  # the graph case
    require_data("ml-100k", "u.data")  # the recommender case
    code, out, err = cli("run", REPO / "suites" / "smoke.yaml")
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED" and "kdbench.skipped" not in r.data.tags]
    assert len(finished) == len(runs), "no run of the smoke suite may fail or be skipped"
    modalities = {r.data.tags["kdbench.modality"] for r in finished}
    assert {"vision", "speech", "graph", "recommender", "points", "crossmodal"} <= modalities
    kinds = {r.data.tags["kdbench.kind"] for r in finished}
    assert kinds == {"classification", "ranking", "denoising", "dense"}, "every task kind, end to end"
    for run in finished:
        primary = run.data.tags["kdbench.primary_metric"]
        assert f"test_{primary}" in run.data.metrics
    # and a second invocation trains nothing
    code, out, err = cli("run", REPO / "suites" / "smoke.yaml")
    assert code == 0 and f"{len(runs)}/{len(runs)} runs already finished, skipped" in err
