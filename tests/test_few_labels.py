"""recipe.train_examples: a role trains on a fixed, class-stratified subset of the training split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kdbench_vision.digits import build_digits

from kdbench import Recipe
from kdbench.hashing import config_hash
from kdbench.kinds.classification import stratified_subset


def test_the_subset_has_exactly_the_count_with_classes_in_proportion():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    chosen = stratified_subset(labels, 20)
    assert len(chosen) == 20 and len(set(chosen.tolist())) == 20
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [12, 6, 2]
    odd = stratified_subset(labels, 7)  # 4.2, 2.1, 0.7 per class: whole samples as close as they go
    assert sorted(torch.bincount(labels[odd], minlength=3).tolist()) == [1, 2, 4]


def test_the_subset_is_fixed_by_its_seed_and_grows_by_prefixes():
    labels = build_digits().splits["train"][1]
    small, large = stratified_subset(labels, 50), stratified_subset(labels, 200)
    assert torch.equal(small, stratified_subset(labels, 50))
    assert set(small.tolist()) <= set(large.tolist()), "more labels must add examples, not swap them"
    assert not torch.equal(small, stratified_subset(labels, 50, seed=1))
    assert torch.bincount(labels[small], minlength=10).tolist() == [5] * 10


def test_training_batches_cover_the_subset_each_epoch_and_evaluation_everything():
    task = build_digits()
    recipe = Recipe(epochs=1, batch_size=16, lr=0.1, train_examples=50)
    expected = set(stratified_subset(task.splits["train"][1], 50).tolist())
    for epoch in range(2):
        batches = task.batches("train", recipe, torch.Generator().manual_seed(epoch))
        seen = [i for batch in batches for i in batch["index"].tolist()]
        assert sorted(seen) == sorted(expected)
    assert sum(len(b["y"]) for b in task.batches("train", None, None)) == task.num_train  # teacher outputs: all
    assert sum(len(b["y"]) for b in task.batches("val", recipe, None)) == len(task.splits["val"][1])


def test_a_recipe_without_the_field_keeps_the_run_keys_it_had():
    recipe = Recipe(epochs=3, batch_size=8, lr=0.1)
    before = {"epochs": 3, "batch_size": 8, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
              "weight_decay": 0.0, "schedule": "cosine", "augment": None}
    assert recipe.model_dump() == before and config_hash(recipe) == config_hash(before)
    assert recipe.updated({"train_examples": 10}).model_dump() == {**before, "train_examples": 10}


def test_the_run_trains_on_the_subset_and_logs_it(tiny_suite, cli, isolated: Path):
    from kdbench.tracking import Tracker

    path = tiny_suite(methods="[student-only]")
    path.write_text(path.read_text().replace("student: {epochs: 1}", "student: {epochs: 1, train_examples: 30}"))
    code, out, err = cli("run", path)
    assert code == 0, err
    params = {r.tags["kdbench.role"]: r.params for r in Tracker(f"sqlite:///{isolated / 'mlflow.db'}", "tiny").runs()}
    assert params["student"]["student.recipe.train_examples"] == "30"
    assert "model.recipe.train_examples" not in params["teacher"]


def test_a_task_that_cannot_subset_is_refused_before_anything_runs(cli, isolated: Path):
    path = isolated / "points.yaml"
    path.write_text("""
name: points
seeds: 1
tasks: [{name: toy-8gaussians, options: {samples: 50, train_size: 256}}]
pairs:
  - {teacher: mlp-points, student: mlp-points}
methods: [ddim-n]
recipe:
  teacher: {epochs: 1, train_examples: 10}
""")
    code, out, err = cli("run", path)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"kdbench: error: {path}: recipe.teacher.train_examples: task 'toy-8gaussians' cannot train on a subset "
        "of its examples"]
    assert not (isolated / "mlflow.db").exists()


@pytest.mark.parametrize("count", [0, 100_000])
def test_a_count_outside_the_training_split_is_refused(tiny_suite, cli, isolated: Path, count: int):
    path = tiny_suite(methods="[student-only]")
    recipe = f"student: {{epochs: 1, train_examples: {count}}}"
    path.write_text(path.read_text().replace("student: {epochs: 1}", recipe))
    code, out, err = cli("run", path)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "train_examples" in err
