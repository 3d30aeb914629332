"""`kdbench publish` and `kdbench leaderboard`, in-process, on a synthetic MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kdbench.leaderboard.publish import command_line
from kdbench.provenance import git_commit, kdbench_version
from tests.html_tables import table_rows
from tests.synthetic_store import ERROR, ROWS, SKIP_REASON, copy, tags

SUITE = """
name: {name}
description: "Synthetic <b>store</b> | for tests"
tasks: [digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: [student-only, kd]
paper:
  - {{task: toy, method: kd, value: 0.9, source: "a paper"}}
"""


@pytest.fixture
def store(tmp_path: Path) -> str:
    return copy(tmp_path)


@pytest.fixture
def suite(isolated: Path) -> Path:
    return write(isolated, "synthetic")


def write(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SUITE.format(name=name))
    return path


def markdown_rows(text: str) -> list[str]:
    """Body rows of the first markdown table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append(line)
    return body


def test_publish_writes_every_file_and_they_agree(cli, suite: Path, store: str, tmp_path: Path):
    out = tmp_path / "results"
    code, stdout, stderr = cli("publish", suite, "--out", out, "--tracking-uri", store)
    assert code == 0, stderr
    folder = out / "synthetic"
    for name in ("leaderboard.md", "leaderboard.html", "leaderboard.csv", "leaderboard.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "leaderboard.json").read_text())
    csv = pd.read_csv(folder / "leaderboard.csv")
    md = (folder / "leaderboard.md").read_text()
    page = (folder / "leaderboard.html").read_text()
    assert len(csv) == len(record["rows"]) == len(markdown_rows(md)) == \
        len(table_rows(page, "leaderboard")) == ROWS
    assert list(csv["method"]) == [r["method"] for r in record["rows"]]

    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == sorted(plot["file"] for plot in record["plots"])
    assert len(pngs) == 7  # 3 groups × (trade-off, bars) + learning curves where histories exist
    assert all(p.stat().st_size > 5000 for p in folder.glob("*.png"))

    stamp = record["stamp"]
    assert (stamp["version"], stamp["commit"]) == (kdbench_version(), git_commit())
    assert stamp["command"].startswith("kdbench publish") and "--out" in stamp["command"]
    for text in (md, page, (out / "README.md").read_text(), (out / "index.html").read_text()):
        assert stamp["date"] in text and git_commit() in text
    assert "checkpoint: final epoch" in md and "Checkpoint: final epoch" in page

    kd = next(r for r in record["rows"] if r["task"] == "toy" and r["method"] == "kd")
    assert (kd["paper"], kd["gap_closed"]) == (0.9, pytest.approx(0.5))
    assert kd["values"] == "[0.86, 0.87, 0.88]"
    assert "paper = the value the publication reports: a paper." in md
    assert SKIP_REASON in md and ERROR in md
    assert [f["method"] for f in record["failures"]] == ["crd"]
    assert "1.10†" in md and "beats its teacher" in md


PLOT_PLUGIN = """
from matplotlib.figure import Figure
from kdbench import hookimpl

@hookimpl
def kdbench_leaderboard_plots(runs, rows):
    figure = Figure(figsize=(3, 2))
    figure.subplots().plot(range(len(rows)), [len(ids) for ids in rows["run_ids"]])
    return [({name!r}, "runs per row of " + rows["task"].iloc[0], figure)]
"""


def test_plugin_plots_are_saved_captioned_and_listed(cli, suite: Path, store: str, tmp_path: Path):
    plugin = tmp_path / "plots_plugin.py"
    plugin.write_text(PLOT_PLUGIN.format(name="runs-per-row"))
    out = tmp_path / "results"
    code, _, stderr = cli("publish", suite, "--out", out, "--tracking-uri", store, "--plugin", plugin)
    assert code == 0, stderr
    folder = out / "synthetic"
    record = json.loads((folder / "leaderboard.json").read_text())
    ours = [plot for plot in record["plots"] if plot["file"].endswith("-runs-per-row.png")]
    assert sorted(plot["caption"].rsplit(" ", 1)[-1] for plot in ours) == ["toy", "toy-close", "toy-err"]
    assert all((folder / plot["file"]).stat().st_size > 1000 for plot in ours)
    assert all(plot["file"] in (folder / "leaderboard.md").read_text() for plot in ours)


@pytest.mark.parametrize("name", ["../escape", "<b>", "bars", ""])
def test_a_plugin_plot_with_a_bad_or_taken_name_is_a_one_line_error(
        cli, suite: Path, store: str, tmp_path: Path, name: str):
    plugin = tmp_path / "plots_plugin.py"
    plugin.write_text(PLOT_PLUGIN.format(name=name))
    code, _, stderr = cli("publish", suite, "--out", tmp_path / "results", "--tracking-uri", store,
                          "--plugin", plugin)
    assert code == 2
    assert stderr.startswith("kdbench: error: leaderboard plot") and len(stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("escape*")) and not list((tmp_path / "results").glob("*/*escape*"))


def test_index_keeps_suites_published_before(cli, suite: Path, store: str, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    other = client.create_experiment("other")
    for method, value in (("teacher", 0.9), ("student-only", 0.8)):
        run = client.create_run(other, tags=tags("toy", method, 0)).info.run_id
        client.log_metric(run, "test_accuracy", value)
        client.set_terminated(run)
    out = tmp_path / "results"
    (out / "stray").mkdir(parents=True)
    (out / "stray" / "leaderboard.json").write_text("not json")

    assert cli("publish", suite, "--out", out, "--tracking-uri", store)[0] == 0
    second = write(suite.parent, "other")
    code, stdout, stderr = cli("publish", second, "--out", out, "--tracking-uri", store)
    assert code == 0
    assert "not a kdbench leaderboard" in stderr
    index = (out / "index.html").read_text()
    readme = (out / "README.md").read_text()
    assert [row[0] for row in table_rows(index, "suites")] == ["other", "synthetic"]
    assert "synthetic/leaderboard.md" in readme and "other/leaderboard.md" in readme
    assert "Synthetic &lt;b&gt;store&lt;/b&gt; \\| for tests" in readme
    assert "stray" not in index


def test_leaderboard_prints_the_board(cli, suite: Path, store: str):
    code, stdout, stderr = cli("leaderboard", suite, "--tracking-uri", store)
    assert code == 0, stderr
    assert "checkpoint: final epoch" in stdout
    assert "toy · big → small · accuracy ↑" in stdout
    assert f"fitnet: n/a — {SKIP_REASON}" in stdout
    assert f"crd: failed — {ERROR}" in stdout and "1.10†" in stdout


def test_missing_store_empty_suite_and_unknown_suite_are_one_line_errors(
        cli, suite: Path, store: str, tmp_path: Path):
    missing = tmp_path / "absent.db"
    for command in ("leaderboard", "publish"):
        code, _, stderr = cli(command, suite, "--tracking-uri", f"sqlite:///{missing}")
        assert (code, stderr.count("\n")) == (2, 1)
        assert "no MLflow store" in stderr
    assert not missing.exists()  # looking did not create an empty store

    code, _, stderr = cli("publish", write(suite.parent, "never-run"), "--tracking-uri", store)
    assert (code, stderr.count("\n")) == (2, 1)
    assert "no runs of suite 'never-run'" in stderr

    code, _, stderr = cli("leaderboard", "no-such-suite", "--tracking-uri", store)
    assert (code, stderr.count("\n")) == (2, 1)
    assert "unknown suite 'no-such-suite'" in stderr


def test_published_command_line_hides_tracking_credentials():
    line = command_line(["publish", "quickstart", "--tracking-uri", "https://ann:s3cret@mlflow.example:5000"])
    assert "s3cret" not in line and "https://***@mlflow.example:5000" in line


def test_published_command_line_names_paths_relative_to_the_checkout(tmp_path: Path):
    root = tmp_path / "checkout"
    line = command_line(["publish", "suites/x.yaml", "--out", str(root / "results"),
                         "--tracking-uri", f"sqlite:///{root / '.kdbench' / 'graph.db'}",
                         f"--plugin={root / 'my.py'}", "/elsewhere/data/extra.py"], root=root)
    assert line == ("kdbench publish suites/x.yaml --out results --tracking-uri sqlite:///.kdbench/graph.db "
                    "--plugin=my.py .../extra.py")
    assert str(tmp_path) not in line
