"""The CIFAR plugin's task: CIFAR-100 read from a tiny archive in the canonical format (no download), its split,
normalisation and crop-and-flip augmentation, its refusals, and a one-epoch suite through the CLI."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import kdbench_cifar.cifar100 as cifar100
import pytest
import torch
from kdbench_cifar.augment import crop_flip, crop_flip_draws
from kdbench_cifar.cifar100 import ARCHIVE, MEAN, STD, CifarFormatError, build_cifar100
from mlflow.tracking import MlflowClient

from kdbench import DatasetFile, Recipe, UserError
from kdbench.errors import DatasetMissingError
from tests.cifar_archive import CLASSES, N_TEST, N_TRAIN, tiny_members, write_archive


def image_ids(images: torch.Tensor) -> list[int]:
    """Each image's number, which ``tiny_members`` writes into its first two red pixels."""
    red = (images[:, 0, 0, :2] * STD[0] + MEAN[0]) * 255
    codes = red.round().long()
    return (codes[:, 0] + 256 * codes[:, 1]).tolist()


@pytest.fixture
def use_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write an archive under a fresh data root and make the dataset spec expect its digest (the production
    digest stays the canonical one: only this test's view of ``CIFAR100_FILES`` changes)."""

    def use(members: dict[str, object] | None = None, raw: dict[str, bytes] | None = None,
            file: bytes | None = None) -> Path:
        root = tmp_path / "data"
        path = root / "cifar100" / ARCHIVE
        if file is None:
            digest = write_archive(path, tiny_members() if members is None else members, raw)
        else:  # not an archive at all
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file)
            digest = hashlib.sha256(file).hexdigest()
        monkeypatch.setenv("KDBENCH_DATA", str(root))
        monkeypatch.setattr(cifar100, "CIFAR100_FILES", (DatasetFile(ARCHIVE, digest, cifar100.URL),))
        return path

    return use


@pytest.fixture
def tiny(use_archive) -> Path:
    return use_archive()


def normalised(value: float, channel: int) -> float:
    return (value / 255 - MEAN[channel]) / STD[channel]


def test_the_production_spec_names_the_canonical_archive():
    from kdbench.registry import dataset

    spec = dataset("cifar100")
    (item,) = spec.files
    assert item.path == "cifar-100-python.tar.gz"
    assert item.url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert item.sha256 == "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
    assert "Krizhevsky" in spec.licence


def test_loader_decodes_the_canonical_format(tiny):
    task = build_cifar100(val_size=0)
    x_train, y_train = task.splits["train"]
    x_test, y_test = task.splits["test"]
    assert x_train.shape == (N_TRAIN, 3, 32, 32) and x_test.shape == (N_TEST, 3, 32, 32)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.long
    members = tiny_members()
    assert y_test.tolist() == members["test"][b"fine_labels"]  # the test split keeps the file's order
    assert y_train.tolist() == members["train"][b"fine_labels"]  # val_size 0: every training image, in order
    assert task.info["num_classes"] == 100 and task.info["class_names"][42] == "fine_42"
    # test image 0: red (y·32 + x) mod 256 at [0, 0, y, x] (planes channel-major, each row-major), green 255 − red
    for y, x in [(0, 5), (3, 17), (7, 31), (31, 31), (16, 0)]:
        red = (y * 32 + x) % 256
        assert x_test[0, 0, y, x].item() == pytest.approx(normalised(red, 0), abs=1e-5)
        assert x_test[0, 1, y, x].item() == pytest.approx(normalised(255 - red, 1), abs=1e-5)
        assert x_test[0, 2, y, x].item() == pytest.approx(normalised(7, 2), abs=1e-5)
    # every pixel of every image, against the raw bytes normalised by hand
    raw = torch.from_numpy(members["train"][b"data"]).float().reshape(-1, 3, 32, 32)
    expected = (raw / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(x_train, expected, atol=1e-5)


def test_the_canonical_archive_when_present():
    """The real file, where someone fetched it (``kdbench data fetch cifar100``; CI's data root has no copy, so
    this is skipped there even under KDBENCH_REQUIRE_DATA=1): 45,000 / 5,000 / 10,000 images, 450 / 50 / 100 of
    each class, the published mean and std giving roughly standardised channels."""
    from kdbench.data_root import data_root

    if not (data_root() / "cifar100" / ARCHIVE).is_file():
        pytest.skip(f"cifar100/{ARCHIVE} is not under the data root (kdbench data fetch cifar100)")
    task = build_cifar100()
    sizes = {split: len(y) for split, (_, y) in task.splits.items()}
    assert sizes == {"train": 45000, "val": 5000, "test": 10000}
    for split, per_class in (("train", 450), ("val", 50), ("test", 100)):
        assert torch.bincount(task.splits[split][1], minlength=100).tolist() == [per_class] * 100
    x = task.splits["train"][0]
    assert x.mean((0, 2, 3)).abs().max() < 0.01 and (x.std((0, 2, 3)) - 1).abs().max() < 0.02
    assert task.info["class_names"][:3] == ("apple", "aquarium_fish", "baby")


def test_validation_split_is_stratified_disjoint_and_fixed(tiny):
    task = build_cifar100(val_size=40)
    (x_train, y_train), (x_val, y_val) = task.splits["train"], task.splits["val"]
    assert len(y_train) == N_TRAIN - 40 and len(y_val) == 40
    assert torch.bincount(y_val, minlength=100)[CLASSES].tolist() == [4] * len(CLASSES)  # 20% of every class
    assert torch.bincount(y_train, minlength=100)[CLASSES].tolist() == [16] * len(CLASSES)
    train_ids, val_ids = image_ids(x_train), image_ids(x_val)
    assert not set(train_ids) & set(val_ids) and sorted(train_ids + val_ids) == list(range(N_TRAIN))
    labels = tiny_members()["train"][b"fine_labels"]
    assert [labels[i] for i in val_ids] == y_val.tolist()  # each image keeps its own label
    assert image_ids(build_cifar100(val_size=40).splits["val"][0]) == val_ids  # the same split every time
    assert image_ids(build_cifar100(val_size=40, split_seed=1).splits["val"][0]) != val_ids
    assert task.has_split("val") and not build_cifar100(val_size=0).has_split("val")
    with pytest.raises(UserError, match=r"val_size must lie in \[0, 200\), got 200"):
        build_cifar100(val_size=N_TRAIN)


def test_default_recipes_are_repdistillers_with_its_step_schedule(tiny):
    task = build_cifar100(val_size=40)
    for role in ("teacher", "student"):
        recipe = task.recipe(role)
        assert (recipe.epochs, recipe.batch_size, recipe.optimizer, recipe.lr) == (240, 64, "sgd", 0.05)
        assert (recipe.momentum, recipe.weight_decay, recipe.augment) == (0.9, 5e-4, "crop4-flip")
        assert (recipe.schedule, recipe.milestones, recipe.gamma) == ("step", (150, 180, 210), 0.1)


def test_corrupt_archive_is_refused(tiny):
    data = bytearray(tiny.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tiny.write_bytes(bytes(data))
    with pytest.raises(DatasetMissingError, match=r"cifar-100-python.tar.gz is corrupt \(sha256"):
        build_cifar100()


def test_missing_archive_is_one_line_naming_it(tmp_path, monkeypatch, cli):
    root = tmp_path / "empty"
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    expected = rf"file cifar-100-python.tar.gz not found at {root / 'cifar100' / ARCHIVE}.*kdbench data fetch cifar100"
    with pytest.raises(DatasetMissingError, match=expected):
        build_cifar100()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [cifar100]\npairs: [{teacher: resnet32x4, student: resnet8x4}]\nmethods: [kd]\n")
    code, out, err = cli("run", suite)
    assert code == 2 and err.count("\n") == 1, err
    assert f"cifar-100-python.tar.gz not found at {root / 'cifar100' / ARCHIVE}" in err


def test_malformed_members_are_refused_in_one_line(use_archive):
    members = tiny_members()
    del members["meta"]
    use_archive(members)
    with pytest.raises(CifarFormatError, match=r"member cifar-100-python/meta is missing") as caught:
        build_cifar100()
    assert "\n" not in str(caught.value)

    members = tiny_members()
    members["train"][b"data"] = members["train"][b"data"].reshape(-1, 3, 32, 32)
    use_archive(members)
    with pytest.raises(CifarFormatError, match=r"cifar-100-python/train has 'data' of ndarray \(200, 3, 32, 32\)"):
        build_cifar100()

    members = tiny_members()
    del members["test"][b"fine_labels"]
    use_archive(members)
    with pytest.raises(CifarFormatError, match=r"cifar-100-python/test has no 'fine_labels' entry"):
        build_cifar100()

    members = tiny_members()
    members["train"][b"fine_labels"][3] = 100
    use_archive(members)
    with pytest.raises(CifarFormatError, match=r"fine labels outside 0\.\.99"):
        build_cifar100()

    use_archive(raw={"test": b"not a pickle"})
    with pytest.raises(CifarFormatError, match=r"cifar-100-python/test is not a readable pickle"):
        build_cifar100()

    use_archive(file=b"plain bytes, not gzip")
    with pytest.raises(CifarFormatError, match=r"cifar-100-python.tar.gz is not a readable tar.gz archive"):
        build_cifar100()


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_a_pickle_that_names_other_code_is_refused(use_archive, capsys):
    """Even from a file whose digest matches, nothing but numpy's array reconstruction is imported."""
    members = tiny_members()
    members["meta"][b"fine_label_names"] = _Payload()
    use_archive(members)
    with pytest.raises(CifarFormatError, match=r"cifar-100-python/meta is not a readable pickle \(refers to "
                                               r"(__builtin__|builtins)\.print\)"):
        build_cifar100()
    assert "unpickled code ran" not in capsys.readouterr().out


def test_data_fetch_downloads_and_checks(tmp_path, monkeypatch, cli):
    """`kdbench data fetch cifar100` over a file:// mirror: no network, the same code path."""
    source = tmp_path / "mirror" / ARCHIVE
    digest = write_archive(source, tiny_members())
    monkeypatch.setattr(cifar100, "CIFAR100_FILES", (DatasetFile(ARCHIVE, digest, source.as_uri()),))
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "fresh"))
    code, out, err = cli("data", "fetch", "cifar100")
    assert code == 0, err
    assert "1 file(s) downloaded, 0 already present" in out
    assert len(build_cifar100(val_size=0).splits["train"][1]) == N_TRAIN


# --- crop4-flip ------------------------------------------------------------------------------------------------

BLACK = torch.tensor([-m / s for m, s in zip(MEAN, STD, strict=True)])


def augment(images: torch.Tensor, seed: int) -> torch.Tensor:
    return cifar100.AUGMENTATIONS["crop4-flip"](images, torch.Generator().manual_seed(seed))


def normalise(raw: torch.Tensor) -> torch.Tensor:
    return (raw - torch.tensor(MEAN).view(-1, 3, 1, 1)) / torch.tensor(STD).view(-1, 3, 1, 1)


def test_crop_flip_is_torchvisions_random_crop_and_flip_on_the_unnormalised_image():
    """Image by image, torchvision's pad (black, 0) → crop → flip on the [0, 1] image, then normalised, with the
    draws the augmentation says it made: the vectorised result is the same, flips exactly where it says."""
    import torchvision.transforms.functional as TF

    raw = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    out = augment(normalise(raw), seed=3)
    offsets, flips = crop_flip_draws(64, torch.Generator().manual_seed(3))
    assert 0 < flips.sum() < 64 and len({tuple(o) for o in offsets.tolist()}) > 20
    for i in range(64):
        top, left = offsets[i].tolist()
        reference = TF.crop(TF.pad(raw[i], [4], fill=0), top, left, 32, 32)
        if flips[i]:
            reference = TF.hflip(reference)
        assert torch.allclose(out[i], normalise(reference)[0], atol=1e-5), i
        unflipped = TF.crop(TF.pad(raw[i], [4], fill=0), top, left, 32, 32)
        assert torch.allclose(out[i], normalise(unflipped)[0], atol=1e-5) == (not flips[i]), i


def test_crop_flip_keeps_shape_is_seeded_and_pads_with_normalised_black():
    images = torch.full((256, 3, 32, 32), 2.0)  # brighter than any real pixel: the border stands out
    out = augment(images, seed=0)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(out, augment(images, seed=0)) and not torch.equal(out, augment(images, seed=1))
    border = out != 2.0
    assert border.any() and (~border).any()
    filled = out.permute(1, 0, 2, 3)[border.permute(1, 0, 2, 3)].reshape(3, -1)
    assert torch.allclose(filled, BLACK.view(3, 1).expand_as(filled))  # (0 − mean) / std, per channel
    offsets, _ = crop_flip_draws(256, torch.Generator().manual_seed(0))
    assert offsets.min() == 0 and offsets.max() == 8  # every shift of up to 4 pixels each way
    shifted = border.flatten(1).any(1)
    assert torch.equal(shifted, (offsets != 4).any(1))  # a border exactly where the crop is off-centre
    # flipping a symmetric image changes nothing; an asymmetric one shows each flip
    ramp = torch.arange(32.0).expand(8, 3, 32, 32).contiguous()
    flipped = augment(ramp, seed=7)
    _, flips = crop_flip_draws(8, torch.Generator().manual_seed(7))
    middle = flipped[:, 0, 16, 4:28]  # inside the image whatever the crop
    assert torch.equal(middle[:, 1] < middle[:, 0], flips)


def test_crop_flip_is_fast_on_a_batch():
    images = torch.randn(64, 3, 32, 32)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(20):
        crop_flip(images, generator, fill=BLACK)
    assert (time.perf_counter() - start) / 20 < 0.05  # a gather, not 64 Python-level crops


def test_augmentation_is_on_in_training_only(tiny):
    task = build_cifar100(val_size=40)
    recipe = Recipe(epochs=1, batch_size=64, lr=0.05, augment="crop4-flip")
    for split in ("test", "val"):
        batch = next(iter(task.batches(split, recipe, None)))
        assert torch.equal(batch["x"], task.splits[split][0][: len(batch["x"])])
    batch = next(iter(task.batches("train", recipe, torch.Generator().manual_seed(0))))
    assert batch["x"].shape == (64, 3, 32, 32)
    assert not torch.equal(batch["x"], task.splits["train"][0][batch["index"]])
    plain = next(iter(task.batches("train", recipe.updated({"augment": None}), torch.Generator().manual_seed(0))))
    assert torch.equal(plain["x"], task.splits["train"][0][plain["index"]])


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_one_epoch_suite_on_the_tiny_archive(use_archive, cli, isolated: Path):
    """resnet32x4 → resnet8x4, the CRD pair, one epoch of 30 images (a 7.4M-parameter teacher is slow on a CPU)."""
    use_archive(tiny_members(n_train=40, n_test=10))
    suite = isolated / "cifar-tiny.yaml"
    suite.write_text(
        "name: cifar-tiny\n"
        "tasks: [{name: cifar100, options: {val_size: 10}}]\n"
        "pairs: [{teacher: resnet32x4, student: resnet8x4}]\n"
        "methods: [student-only, kd]\n"
        "recipe:\n  teacher: {epochs: 1}\n  student: {epochs: 1}\n"
    )
    code, out, err = cli("run", suite)
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cifar-tiny").experiment_id])
    assert sorted(r.data.tags["kdbench.method"] for r in runs) == ["kd", "student-only", "teacher"]
    assert all(r.info.status == "FINISHED" and "kdbench.skipped" not in r.data.tags for r in runs)
    assert all(0 <= r.data.metrics["test_accuracy"] <= 1 for r in runs)
