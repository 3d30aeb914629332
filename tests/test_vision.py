"""The vision plugin: canonical MNIST files, digits splits, jitter, models' named features."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from kdbench_vision.augment import jitter
from kdbench_vision.digits import build_digits
from kdbench_vision.mnist import MNIST_FILES, build_mnist
from kdbench_vision.models import CNN_LARGE, CNN_SMALL, HINTON_STUDENT, HINTON_TEACHER

from kdbench.errors import DatasetMissingError

FILES = [f.path for f in MNIST_FILES]


def test_mnist_reads_the_canonical_files(require_data):
    require_data("mnist", *FILES)
    task = build_mnist(val_size=5000)
    x_train, y_train = task.splits["train"]
    x_test, y_test = task.splits["test"]
    assert x_train.shape == (55000, 1, 28, 28) and len(task.splits["val"][1]) == 5000
    assert x_test.shape == (10000, 1, 28, 28)
    # the published test label counts per class
    assert torch.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(x_train.mean().item()) < 0.02 and abs(x_train.std().item() - 1) < 0.02  # normalised


def copy_mnist(tmp_path: Path, require_data) -> Path:
    source = require_data("mnist", *FILES)
    root = tmp_path / "data"
    shutil.copytree(source, root / "mnist")
    return root


def test_missing_file_is_one_line_naming_it(tmp_path, monkeypatch, require_data, cli):
    root = copy_mnist(tmp_path, require_data)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    expected = r"file t10k-labels-idx1-ubyte.gz not found at .*kdbench data fetch mnist"
    with pytest.raises(DatasetMissingError, match=expected):
        build_mnist()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [mnist]\npairs: [{teacher: cnn-large, student: cnn-small}]\nmethods: [kd]\n")
    code, out, err = cli("run", suite)
    assert code == 2 and err.count("\n") == 1 and "t10k-labels-idx1-ubyte.gz not found" in err


def test_corrupt_file_is_refused(tmp_path, monkeypatch, require_data):
    root = copy_mnist(tmp_path, require_data)
    path = root / "mnist" / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    with pytest.raises(DatasetMissingError, match="train-labels-idx1-ubyte.gz is corrupt"):
        build_mnist()


def test_data_fetch_downloads_and_checks(tmp_path, monkeypatch, require_data, cli):
    """`kdbench data fetch` over a file:// mirror: no network needed, same code path."""
    import kdbench_vision.mnist as mnist

    source = require_data("mnist", *FILES)
    mirror = {f.path: f.__class__(f.path, f.sha256, (source / f.path).as_uri()) for f in MNIST_FILES}
    monkeypatch.setattr(mnist, "MNIST_FILES", tuple(mirror.values()))
    import kdbench_vision

    monkeypatch.setattr(kdbench_vision, "MNIST_FILES", tuple(mirror.values()))
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "fresh"))
    code, out, err = cli("data", "fetch", "mnist")
    assert code == 0, err
    assert "4 file(s) downloaded, 0 already present" in out
    code, out, _ = cli("data", "fetch", "mnist")
    assert "0 file(s) downloaded, 4 already present" in out
    code, _, err = cli("data", "fetch", "mnits")
    assert code == 2 and "did you mean 'mnist'" in err


def test_digits_split_is_fixed_stratified_and_disjoint():
    task = build_digits()
    sizes = {name: len(y) for name, (x, y) in task.splits.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] > 300 and sizes["val"] > 150
    rows = {name: {tuple(r.flatten().tolist()) for r in x} for name, (x, _) in task.splits.items()}
    assert len(rows["train"] & rows["test"]) < 5  # disjoint samples; digits holds a few duplicate images
    assert torch.equal(build_digits().splits["test"][1], task.splits["test"][1])
    counts = torch.bincount(task.splits["test"][1])
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: ~20% of each ~180-image class


def test_jitter_shifts_by_at_most_two_pixels_and_is_seeded():
    image = torch.zeros(200, 1, 28, 28)
    image[:, :, 14, 14] = 1.0
    shifted = jitter(image, torch.Generator().manual_seed(0))
    positions = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 28, positions % 28
    assert (rows - 14).abs().max() == 2 and (cols - 14).abs().max() == 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 25  # every shift in [-2, 2]² occurs
    assert torch.equal(shifted, jitter(image, torch.Generator().manual_seed(0)))


def test_augmentation_is_off_outside_training():
    task = build_digits()
    from kdbench import Recipe

    recipe = Recipe(epochs=1, batch_size=64, lr=0.1, augment="jitter2")
    test_batch = next(iter(task.batches("test", recipe, None)))
    assert torch.equal(test_batch["x"], task.splits["test"][0][:len(test_batch["x"])])
    train_batch = next(iter(task.batches("train", recipe, torch.Generator().manual_seed(0))))
    assert not torch.equal(train_batch["x"], task.splits["train"][0][train_batch["index"]])


@pytest.mark.parametrize("spec", [HINTON_TEACHER, HINTON_STUDENT, CNN_LARGE, CNN_SMALL], ids=lambda s: s.name)
def test_models_return_logits_and_named_features(spec):
    task = build_digits()
    model = spec.build(task).eval()
    output, features = model(task.splits["test"][0][:5])
    assert output.shape == (5, 10)
    assert "embedding" in features and features["embedding"].shape[0] == 5
    assert {"stage1", "stage2"} <= set(features)


def test_hinton_architectures_have_the_papers_sizes(require_data):
    require_data("mnist", *FILES)
    task = build_mnist()
    count = lambda spec: sum(p.numel() for p in spec.build(task).parameters())  # noqa: E731
    assert count(HINTON_TEACHER) == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    assert count(HINTON_STUDENT) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10
