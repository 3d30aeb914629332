"""Disk and data faults: a full disk under the cache or the artifact root is a one-line error naming the
folder, leaves no partial checkpoint and is resumed from once there is room; a dataset file changed after
a teacher was cached makes that cache entry stale, so the teacher trains again.

A full disk is a small tmpfs mounted over the folder (root can here; elsewhere those tests are skipped,
saying why), filled up where it must be full from the start.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from kdbench import data_root
from kdbench.data_root import dataset_file
from kdbench.teacher_cache import TeacherCache
from tests.conftest import write_suite

POINTS_PLUGIN = '''
"""Task ``points``: examples drawn from the number in the one file of dataset ``points``, whose digest the
test pins through KDBENCH_TEST_POINTS_SHA (a dataset's new release: new file, new pin)."""
import os

import torch

from kdbench import ClassificationTask, DatasetFile, DatasetSpec, Recipe, TaskSpec, hookimpl


def build_points() -> ClassificationTask:
    spec = DatasetSpec("points", (DatasetFile("seed.txt", os.environ["KDBENCH_TEST_POINTS_SHA"]),))
    generator = torch.Generator().manual_seed(int(spec.path("seed.txt").read_text()))
    images = torch.rand(300, 1, 8, 8, generator=generator)
    labels = (images.mean(dim=(1, 2, 3)) > 0.5).long()
    splits = {"train": (images[:200], labels[:200]), "val": (images[200:250], labels[200:250]),
              "test": (images[250:], labels[250:])}
    recipe = Recipe(epochs=1, batch_size=50, lr=0.05)
    return ClassificationTask(splits, num_classes=2, recipes={"teacher": recipe, "student": recipe})


@hookimpl
def kdbench_tasks():
    return [TaskSpec("points", "classification", "vision", build_points)]
'''
POINTS_SUITE = """
name: points
seeds: 1
tasks: [points]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods: [kd]
"""


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, str], Path]]:
    """``mount(folder, size)``: a tmpfs of ``size`` over ``folder``, unmounted after the test."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True) if shutil.which("mount") else None
        if done is None or done.returncode != 0:
            pytest.skip("a full disk is simulated with a small tmpfs, and mounting one failed here (it needs root): "
                        + (done.stderr.strip() if done is not None else "no mount command"))
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    """Make room: the same tmpfs, bigger."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte under ``folder``; the filler file, to delete to make room again."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(bytes(1 << 16))
        except OSError:
            pass
    return filler


def statuses(work: Path, experiment: str) -> list[tuple[str, str]]:
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return sorted((r.data.tags["kdbench.role"], r.info.status) for r in client.search_runs([found.experiment_id]))


def one_error_line(err: str) -> str:
    """The one error line a user error prints, with no traceback beside it (the progress bar's lines aside)."""
    errors = [line for line in err.splitlines() if line.startswith("kdbench: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_a_full_cache_stops_with_one_line_naming_the_checkpoint_leaves_nothing_and_the_next_run_resumes(
        cli, tiny_suite, isolated: Path, small_disk, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = small_disk(isolated.parent / "small-cache", "1m")  # the teacher's checkpoint takes 6 MB
    monkeypatch.setenv("KDBENCH_CACHE", str(cache))
    suite = tiny_suite(methods="[kd]")
    code, _, err = cli("run", suite)
    assert code == 2
    teachers = cache / "teachers"
    line = one_error_line(err)
    assert line.startswith(f"kdbench: error: no space left on device writing the checkpoint {teachers}/"), line
    assert list(teachers.iterdir()) == [], "neither a partial checkpoint nor a temporary file is left"
    assert statuses(isolated, "tiny") == [("teacher", "FAILED")], "the suite stopped at the teacher"

    resize(cache, "64m")
    code, _, err = cli("run", suite)
    assert code == 0, err
    assert statuses(isolated, "tiny") == [("distill", "FINISHED"), ("teacher", "FAILED"), ("teacher", "FINISHED")]
    (checkpoint,) = teachers.iterdir()
    assert torch.load(checkpoint, weights_only=True)


def test_a_full_artifact_root_stops_with_one_line_naming_it_and_the_next_run_resumes(
        cli, tiny_suite, isolated: Path, small_disk) -> None:
    artifacts = small_disk(isolated / "mlruns", "64k")  # the embedded store's artifact root
    filler = fill(artifacts)
    suite = tiny_suite(methods="[kd]")
    code, _, err = cli("run", suite)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"kdbench: error: no space left on device writing the run's artifacts under {artifacts}/")
    assert statuses(isolated, "tiny") == [("teacher", "FAILED")]
    assert not list((isolated.parent / "cache" / "teachers").glob("*.pt")), "stopped before anything trained"

    filler.unlink()
    code, _, err = cli("run", suite)
    assert code == 0, err
    assert statuses(isolated, "tiny") == [("distill", "FINISHED"), ("teacher", "FAILED"), ("teacher", "FINISHED")]


def test_a_checkpoint_keeps_its_curves_and_is_stale_once_a_data_file_it_was_trained_on_reads_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_root, "_read", {})
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "points").mkdir(parents=True)
    seed = tmp_path / "data" / "points" / "seed.txt"
    seed.write_text("1")
    dataset_file("points", "seed.txt", None)
    cache = TeacherCache(tmp_path / "cache")
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    cache.save("trained", model, [(1, {"train_loss": 0.5}), (2, {"train_loss": 0.25})])
    assert cache.has("trained") and cache.curves("trained") == [(1, {"train_loss": 0.5}), (2, {"train_loss": 0.25})]
    loaded = cache.load("trained", nn.Linear(3, 2))
    assert torch.equal(loaded.weight, model.weight)
    assert torch.load(cache.path("trained"), weights_only=True).keys() == model.state_dict().keys()

    seed.write_text("2")  # the same size: only the digest tells
    dataset_file("points", "seed.txt", None)
    assert not cache.has("trained"), "trained on other data: stale"
    monkeypatch.setattr(data_root, "_read", {})
    assert cache.has("trained"), "a process that never read the file (another task's) cannot call it stale"
    torch.save(model.state_dict(), cache.path("older"))  # a checkpoint from before the record
    assert cache.has("older") and cache.curves("older") == []


def test_a_dataset_file_changed_after_its_teacher_was_cached_trains_the_teacher_again(
        cli, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_root, "_read", {})
    data = isolated.parent / "data"
    (data / "points").mkdir(parents=True)
    monkeypatch.setenv("KDBENCH_DATA", str(data))
    plugin = isolated / "points_plugin.py"
    plugin.write_text(POINTS_PLUGIN)
    suite = write_suite(isolated / "points.yaml", POINTS_SUITE)

    def release(number: str) -> None:
        """A new release of the dataset: its file, and the digest pinned for it."""
        (data / "points" / "seed.txt").write_text(number)
        monkeypatch.setenv("KDBENCH_TEST_POINTS_SHA", hashlib.sha256(number.encode()).hexdigest())

    def teacher_runs() -> list:
        client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
        found = client.get_experiment_by_name("points")
        return [r for r in client.search_runs([found.experiment_id]) if r.data.tags["kdbench.role"] == "teacher"]

    release("1")
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, err
    (checkpoint,) = (isolated.parent / "cache" / "teachers").glob("*.pt")
    (first,) = teacher_runs()
    stamp = checkpoint.stat().st_mtime_ns
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0 and "2/2 runs already finished" in err, "the same data: the cached teacher stands"

    release("2")
    code, _, err = cli("run", suite, "--plugin", plugin)
    assert code == 0, err
    (again,) = teacher_runs()
    assert again.info.run_id != first.info.run_id and again.info.status == "FINISHED"
    assert "kdbench.teacher_cache" not in again.data.tags, "trained, not taken from the cache"
    assert checkpoint.stat().st_mtime_ns != stamp
