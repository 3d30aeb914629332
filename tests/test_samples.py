"""Task samples: logged as each run's ``samples/`` artifacts and shown, escaped and capped, on the published page."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt
from mlflow.tracking import MlflowClient

from kdbench.leaderboard.board import Board
from kdbench.leaderboard.markdown import fenced
from kdbench.leaderboard.samples import CHARS, PER_ROW, publish_samples
from tests.conftest import write_suite

PLUGIN = '''
from kdbench import TaskSpec, hookimpl
from kdbench_vision.digits import build_digits


def build(split_seed=0):
    task = build_digits(split_seed)

    def text_samples(model, role):
        weights = sum(float(p.detach().abs().sum()) for p in model.parameters())
        return {samples}

    task.text_samples = text_samples
    return task


@hookimpl
def kdbench_tasks():
    return [TaskSpec("written-digits", "classification", "vision", build, options={{"split_seed": 0}})]
'''
WRITTEN = ('{"generated.txt": f"<script>alert({role!r})</script> weights {weights:.6f}\\n", '
           '"long.txt": "ab" * 1000, "more.txt": "left out"}')
"""Three samples: one naming the role and the weights, one longer than the cap, one past the per-row limit."""
SUITE = """
name: written
seeds: {seeds}
tasks: [written-digits]
pairs:
  - {{teacher: hinton-mlp-1200, student: mlp-30}}
methods: [kd]
recipe:
  teacher: {{epochs: 1}}
  student: {{epochs: 1}}
"""


def _run(cli, isolated: Path, samples: str, seeds: int = 1) -> tuple[Path, Path, int, str]:
    """Run the suite with a task whose samples are the expression ``samples``; returns plugin, suite, code, stdout."""
    plugin = isolated / "written.py"
    plugin.write_text(PLUGIN.format(samples=samples))
    suite = write_suite(isolated / "written.yaml", SUITE.format(seeds=seeds))
    code, out, _ = cli("run", suite, "--plugin", plugin)
    return plugin, suite, code, out


def _publish(cli, isolated: Path, plugin: Path, suite: Path) -> tuple[str, str]:
    """Publish the suite; returns its leaderboard.md and leaderboard.html."""
    # the runs carry this checkout's commit, '-dirty' while it has uncommitted changes
    code, _, err = cli("publish", suite, "--plugin", plugin, "--out", isolated / "results", "--allow-dirty")
    assert code == 0, err
    folder = isolated / "results" / "written"
    return ((folder / "leaderboard.md").read_text(encoding="utf-8"),
            (folder / "leaderboard.html").read_text(encoding="utf-8"))


def _client(isolated: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("written").experiment_id])


def test_samples_are_logged_per_run_and_published_escaped_and_capped(cli, isolated: Path) -> None:
    plugin, suite, code, out = _run(cli, isolated, WRITTEN, seeds=2)
    assert code == 0, out
    client, runs = _client(isolated)
    assert len(runs) == 4
    generated = {}
    for run in runs:
        run_id, tags = run.info.run_id, run.data.tags
        assert [a.path for a in client.list_artifacts(run_id, "samples")] == [
            "samples/generated.txt", "samples/long.txt", "samples/more.txt"]
        text = Path(client.download_artifacts(run_id, "samples/generated.txt", str(isolated))).read_text("utf-8")
        role = "teacher" if tags["kdbench.role"] == "teacher" else "student"
        assert text.startswith(f"<script>alert('{role}')</script> weights "), text
        generated[tags["kdbench.role"], tags["kdbench.seed"]] = text
    assert len(set(generated.values())) == 4, "each run's text comes from its own trained weights"

    page, html = _publish(cli, isolated, plugin, suite)
    shown, cut = "ab" * (CHARS // 2), "ab" * (CHARS // 2) + "a"
    assert page.count("## Samples") == 1
    for role, heading in (("teacher", "written-digits · hinton-mlp-1200 · teacher"),
                          ("distill", "written-digits · mlp-30 · kd")):
        assert f"### {heading} (seed 0)" in page and f"<h3>{heading} (seed 0)</h3>" in html
        assert f"```text\n{generated[role, '0']}```" in page, "the lowest seed's text, as a fenced block"
        assert f'<pre class="sample">{escape(generated[role, "0"])}</pre>' in html
        assert generated[role, "1"] not in page and escape(generated[role, "1"]) not in html
    assert "&lt;script&gt;alert(" in html and "<script>alert(" not in html
    for text in (page, html):
        assert shown in text and cut not in text
        assert text.count(f"first {CHARS:,} of 2,000 characters shown") == 2
        assert text.count(f"{PER_ROW} of 3 samples shown") == 2
        assert "left out" not in text


def test_a_sample_name_with_a_folder_fails_the_run(cli, isolated: Path) -> None:
    _, _, code, out = _run(cli, isolated, '{"../escape.txt": "out of its folder"}')
    assert code == 1
    assert "sample name '../escape.txt' is not a plain .txt name" in out
    client, runs = _client(isolated)
    teacher = next(run for run in runs if run.data.tags["kdbench.role"] == "teacher")
    assert teacher.info.status == "FAILED"
    assert "is not a plain .txt name" in teacher.data.tags["kdbench.error"]
    assert client.list_artifacts(teacher.info.run_id, "samples") == []
    assert not list(isolated.parent.rglob("escape.txt"))


def test_a_task_without_samples_publishes_no_samples_section(cli, isolated: Path) -> None:
    plugin, suite, code, out = _run(cli, isolated, "{}")
    assert code == 0, out
    page, html = _publish(cli, isolated, plugin, suite)
    assert "Samples" not in page and "Samples" not in html
    assert '<pre class="sample">' not in html


def test_each_row_shows_its_lowest_seed_that_has_samples() -> None:
    """Runs are listed by start time; a rerun seed 0 comes last but is still the one shown, and a seed
    without samples gives way to the next."""
    runs = pd.DataFrame({"run_id": ["s1", "s2", "s0", "t1", "t2"], "seed": [1, 2, 0, 1, 2]})
    rows = pd.DataFrame({"task": ["t", "t"], "teacher": ["big", "big"], "student": ["small", "small"],
                         "method": ["kd", "teacher"], "run_ids": [["s1", "s2", "s0"], ["t2", "t1"]]})
    board = Board("s", rows, pd.DataFrame(), pd.DataFrame(), [], [], runs=runs)
    written = {"s0": {"a.txt": "zero"}, "s1": {"a.txt": "one"}, "t2": {"a.txt": "two"}}
    shown = publish_samples(board, lambda run: written.get(run, {}))
    assert [(row.heading, [s.text for s in row.samples]) for row in shown] == [
        ("t · small · kd (seed 0)", ["zero"]), ("t · big · teacher (seed 2)", ["two"])]
    assert all(row.note() == "" and row.samples[0].note() == "" for row in shown), "nothing cut, nothing said"


def test_a_fenced_sample_stays_one_code_block_whatever_it_holds() -> None:
    """Backticks in generated text must not close the block early and let the rest render as markup."""
    text = "before\n```\n<script>x</script> **bold**\n`````\nafter"
    tokens = [t for t in MarkdownIt("commonmark").parse(fenced(text)) if t.type != "text"]
    assert [t.type for t in tokens] == ["fence"]
    assert tokens[0].content == text + "\n"
