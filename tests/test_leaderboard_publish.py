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
    assert record["wall_time"].startswith("wall time ") and "runs at defaults" in record["wall_time"]
    for text in (md, page, (out / "README.md").read_text(), (out / "index.html").read_text()):
        assert record["wall_time"] in text.replace("&#x27;", "'")

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


# ---- provenance and the index (issue #17) ----------------------------------------------------

PLAIN_SUITE = """
name: {name}
description: "suite {name}"
tasks: [digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: [student-only, kd]
"""


def runs_of(store: str, experiment: str, commits: dict[str, str], task: str = "toy") -> None:
    """Finished teacher, student-only and kd runs of ``experiment``, each with its commit from ``commits``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name(experiment)
    exp = found.experiment_id if found else client.create_experiment(experiment)
    metric = "test_accuracy" if task != "toy-err" else "test_errors"
    values = {"teacher": 0.9, "student-only": 0.8, "kd": 0.86}
    for method, commit in commits.items():
        for seed in range(2):
            run = client.create_run(exp, tags=tags(task, method, seed, **{"kdbench.commit": commit})).info.run_id
            client.log_metric(run, metric, values[method] + seed / 100)
            client.set_terminated(run)


def plain(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(PLAIN_SUITE.format(name=name))
    return path


def test_runs_from_uncommitted_code_are_refused_in_one_line(cli, isolated: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]):
    store = f"sqlite:///{tmp_path / 'dirty.db'}"
    runs_of(store, "clean", dict.fromkeys(("teacher", "student-only", "kd"), "c1ea4"))
    runs_of(store, "mixed", {"teacher": "c1ea4", "student-only": "c1ea4", "kd": "d1r7y-dirty"})
    capsys.readouterr()  # MLflow's notes on creating the store are not the command's output
    out = tmp_path / "results"
    code, stdout, stderr = cli("publish", plain(isolated, "clean"), plain(isolated, "mixed"),
                               "--out", out, "--tracking-uri", store)
    assert code == 2
    assert stderr.startswith("kdbench: error: suite 'mixed'") and stderr.count("\n") == 1, stderr
    assert "d1r7y-dirty" in stderr and "--allow-dirty" in stderr and "'clean'" not in stderr
    assert not out.exists(), "a refused publish writes no suite, not even the clean one"

    assert cli("publish", plain(isolated, "clean"), "--out", out, "--tracking-uri", store)[0] == 0
    clean = json.loads((out / "clean" / "leaderboard.json").read_text())
    assert clean["stamp"]["dirty_runs"] == [] and clean["stamp"]["note"] == ""
    assert "allow-dirty" not in (out / "clean" / "leaderboard.md").read_text()


def test_allow_dirty_publishes_and_every_page_says_so(cli, isolated: Path, tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'dirty.db'}"
    runs_of(store, "mixed", {"teacher": "c1ea4", "student-only": "d1r7y-dirty", "kd": "0ther-dirty"})
    out = tmp_path / "results"
    code, _, stderr = cli("publish", plain(isolated, "mixed"), "--out", out, "--tracking-uri", store,
                          "--allow-dirty")
    assert code == 0, stderr
    record = json.loads((out / "mixed" / "leaderboard.json").read_text())
    assert record["run_commits"] == ["0ther-dirty", "c1ea4", "d1r7y-dirty"]
    assert record["stamp"]["dirty_runs"] == ["0ther-dirty", "d1r7y-dirty"]
    note = record["stamp"]["note"]
    assert "--allow-dirty" in note and "uncommitted code (0ther-dirty, d1r7y-dirty)" in note
    assert record["notes"][0] == note
    assert record["modalities"] == {"toy": "vision"}  # from the runs' tags: 'toy' is no registered task
    md = (out / "mixed" / "leaderboard.md").read_text()
    page = (out / "mixed" / "leaderboard.html").read_text()
    readme = (out / "README.md").read_text()
    index = (out / "index.html").read_text()
    assert note in md and note in page and note in readme
    assert note in table_rows(index, "suites")[0][5]


def test_the_index_stamps_each_suite_with_its_own_commits_and_command(cli, isolated: Path, tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'two.db'}"
    runs_of(store, "alpha", dict.fromkeys(("teacher", "student-only", "kd"), "aaaa1111"))
    runs_of(store, "beta", {"teacher": "bbbb2222", "student-only": "bbbb2222", "kd": "cccc3333"})
    out = tmp_path / "results"
    assert cli("publish", plain(isolated, "alpha"), "--out", out, "--tracking-uri", store)[0] == 0
    first = json.loads((out / "alpha" / "leaderboard.json").read_text())["stamp"]
    code, _, stderr = cli("publish", plain(isolated, "beta"), "--tracking-uri", store, "--out", out)
    assert code == 0, stderr
    second = json.loads((out / "beta" / "leaderboard.json").read_text())["stamp"]
    assert first["command"] != second["command"]

    rows = {row[0]: row for row in table_rows((out / "index.html").read_text(), "suites")}
    assert sorted(rows) == ["alpha", "beta"]
    # columns: suite, description, checkpoint, rows, best, published, commit, wall time, files
    assert rows["alpha"][6] == "runs: aaaa1111"
    assert rows["beta"][6] == "runs: bbbb2222, cccc3333"
    for suite, stamp, other in (("alpha", first, second), ("beta", second, first)):
        assert stamp["date"] in rows[suite][5] and f"$ {stamp['command']}" in rows[suite][5]
        assert other["command"] not in rows[suite][5]

    readme = {line.split("]")[0].lstrip("| ["): line for line in markdown_rows((out / "README.md").read_text())}
    assert "aaaa1111" in readme["alpha"] and "bbbb2222" not in readme["alpha"]
    assert "bbbb2222, cccc3333" in readme["beta"] and "aaaa1111" not in readme["beta"]
    assert first["command"].replace("|", "\\|") in readme["alpha"]
    assert second["command"].replace("|", "\\|") in readme["beta"]
    assert "index rebuilt" in (out / "README.md").read_text()


def test_wall_time_counts_time_with_a_run_going_once_per_part():
    from kdbench.leaderboard.store import busy_seconds, duration, wall_time
    from kdbench.tracking import RunRecord

    def run(start_s: float, end_s: float | None, **tags: str) -> RunRecord:
        return RunRecord(f"r{start_s}", "FINISHED", tags, {}, {}, int(start_s * 1000),
                         None if end_s is None else int(end_s * 1000))

    # two overlapping runs (0-10 s, 5-20 s), a gap, one more (30-40 s), one never ended: 20 + 10 s
    untuned = [run(0, 10, **{"kdbench.role": "teacher"}), run(5, 20), run(30, 40), run(50, None)]
    assert busy_seconds(untuned) == 30
    chosen = [run(4000, 4090, **{"kdbench.tuned": "1"})]  # 90 s, hours after the others: the gap is not counted
    trials = [run(1000, 1600, **{"kdbench.role": "study"}), run(1000, 1300, **{"kdbench.role": "trial"}),
              run(1300, 1600, **{"kdbench.role": "trial"})]
    assert wall_time(untuned + chosen, [], tuned=False).startswith("wall time 30 s: runs at defaults 30 s (4 runs)")
    assert wall_time(untuned + chosen, trials, tuned=True).startswith(
        "wall time 12 min: runs at defaults 30 s (4 runs), tuning 10 min (2 trials), "
        "runs at tuned values 2 min (1 runs)")
    assert (duration(59), duration(3600 * 2 + 60 * 5 + 20)) == ("59 s", "2 h 05 min")
