"""Task pictures: logged as each run's ``pictures/`` artifacts and shown on the published page."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from mlflow.tracking import MlflowClient

from tests.conftest import write_suite

matplotlib.use("Agg")

PLUGIN = '''
import io
import matplotlib.pyplot as plt
from kdbench import TaskSpec, hookimpl
from kdbench_vision.digits import build_digits

NAME = "{name}"


def build(split_seed=0):
    task = build_digits(split_seed)

    def pictures(model, role):
        figure, axis = plt.subplots(figsize=(1, 1))
        axis.imshow(task.splits["test"][0][0].reshape(8, 8))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        return {{NAME: buffer.getvalue()}}

    task.pictures = pictures
    return task


@hookimpl
def kdbench_tasks():
    return [TaskSpec("drawn-digits", "classification", "vision", build, options={{"split_seed": 0}})]
'''
SUITE = """
name: drawn
seeds: 2
tasks: [drawn-digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [kd]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1}
"""


def test_pictures_are_logged_per_run_and_published(cli, isolated: Path) -> None:
    plugin = isolated / "drawn.py"
    plugin.write_text(PLUGIN.format(name="first-test-image.png"))
    suite = write_suite(isolated / "drawn.yaml", SUITE)
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("drawn").experiment_id])
    assert len(runs) == 4
    for run in runs:
        assert [a.path for a in client.list_artifacts(run.info.run_id, "pictures")] == [
            "pictures/first-test-image.png"]

    # the runs carry this checkout's commit, '-dirty' while it has uncommitted changes
    code, out, err = cli("publish", suite, "--plugin", plugin, "--out", isolated / "results", "--allow-dirty")
    assert code == 0, err
    published = sorted(p.name for p in (isolated / "results" / "drawn").glob("picture-*.png"))
    assert published == ["picture-drawn-digits-hinton-mlp-1200-teacher-first-test-image.png",
                         "picture-drawn-digits-mlp-30-kd-first-test-image.png"], "one per row, the first seed's"
    page = (isolated / "results" / "drawn" / "leaderboard.md").read_text()
    assert all(f"({name})" in page for name in published)
    image = (isolated / "results" / "drawn" / published[0]).read_bytes()
    assert image.startswith(b"\x89PNG")
    from PIL import Image

    assert Image.open(io.BytesIO(image)).size[0] > 10


def test_a_picture_name_with_a_folder_fails_the_run(cli, isolated: Path) -> None:
    plugin = isolated / "drawn.py"
    plugin.write_text(PLUGIN.format(name="../escape.png"))
    code, out, _ = cli("run", write_suite(isolated / "drawn.yaml", SUITE), "--plugin", plugin)
    assert code == 1
    assert "not a plain .png name" in out
    assert not (isolated.parent / "escape.png").exists()


def test_each_row_shows_its_lowest_seed_that_has_pictures(tmp_path: Path) -> None:
    """Runs are listed by start time; a rerun seed 0 comes last but is still the one shown."""
    import pandas as pd

    from kdbench.leaderboard.board import Board
    from kdbench.leaderboard.pictures import publish_pictures

    runs = pd.DataFrame({"run_id": ["s1", "s2", "s0", "t1", "t2"], "seed": [1, 2, 0, 1, 2]})
    rows = pd.DataFrame({"task": ["t", "t"], "teacher": ["big", "big"], "student": ["small", "small"],
                         "method": ["kd", "teacher"], "run_ids": [["s1", "s2", "s0"], ["t2", "t1"]]})
    board = Board("s", rows, pd.DataFrame(), pd.DataFrame(), [], [], runs=runs)
    drawn = {"s0": {"grid.png": b"zero"}, "s1": {"grid.png": b"one"}, "t2": {"grid.png": b"two"}}
    shown = publish_pictures(board, tmp_path, lambda run: drawn.get(run, {}))
    assert [caption.rsplit(" ", 2)[-2:] for caption, _ in shown] == [["(seed", "0)"], ["(seed", "2)"]]
    assert (tmp_path / shown[0][1]).read_bytes() == b"zero" and (tmp_path / shown[1][1]).read_bytes() == b"two"
