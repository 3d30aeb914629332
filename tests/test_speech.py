"""The speech plugin: FSDD files and splits, log-mel front end, augmentations, models, a CLI run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from kdbench_speech.augment import shift_noise, spec_augment
from kdbench_speech.frontend import FrontEnd
from kdbench_speech.fsdd import MANIFEST, SPEAKERS, build_fsdd, load_features, parse_clip
from kdbench_speech.models import DS_CNN_S, DS_CNN_XS, RES_CNN
from mlflow.tracking import MlflowClient

from kdbench import ClassificationTask, Recipe, UserError, cache_dir
from kdbench.errors import DatasetMissingError


@pytest.fixture
def fsdd(require_data) -> Path:
    return require_data("fsdd", MANIFEST)


def sizes(task: ClassificationTask) -> dict[str, int]:
    return {name: len(y) for name, (_, y) in task.splits.items()}


def speakers(task: ClassificationTask, split: str) -> set[str]:
    return {parse_clip(path).speaker for path in task.info["clips"][split]}


def test_loader_reads_every_clip(fsdd):
    clips, features = load_features(FrontEnd())
    assert len(clips) == 3000 and features.shape == (3000, 40, 101)
    assert sorted({c.speaker for c in clips}) == sorted(SPEAKERS)
    assert torch.bincount(torch.tensor([c.digit for c in clips])).tolist() == [300] * 10
    assert {c.index for c in clips} == set(range(50))
    cached = list((cache_dir() / "fsdd").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".pt"  # written once, no partial file left
    assert torch.equal(load_features(FrontEnd())[1], features)  # the cache gives the same


def test_label_and_speaker_come_from_the_file_name():
    clip = parse_clip("recordings/7_yweweler_32.wav")
    assert (clip.digit, clip.speaker, clip.index) == (7, "yweweler", 32)
    for bad in ("recordings/7_bob_3.wav", "recordings/x_theo_3.wav", "7_theo_3.wav",
                "recordings/7_theo.wav", "recordings/12_theo_3.wav"):
        with pytest.raises(UserError, match="not recordings/<digit>_<speaker>_<index>.wav"):
            parse_clip(bad)


def test_official_split_sizes_and_recording_indices(fsdd):
    task = build_fsdd("official")
    assert sizes(task) == {"train": 2400, "val": 300, "test": 300}
    clips = task.info["clips"].items()
    indices = {name: {parse_clip(p).index for p in paths} for name, paths in clips}
    assert indices == {"test": set(range(5)), "val": set(range(5, 10)), "train": set(range(10, 50))}
    assert all(speakers(task, split) == set(SPEAKERS) for split in ("train", "val", "test"))
    assert not set(task.info["clips"]["train"]) & set(task.info["clips"]["test"])
    for _, y in task.splits.values():
        counts = torch.bincount(y)
        assert counts.min() == counts.max()  # every digit equally often in every part
    labels = [parse_clip(p).digit for p in task.info["clips"]["test"]]
    assert task.splits["test"][1].tolist() == labels


def test_speaker_held_out_split_hears_the_test_voice_nowhere_else(fsdd):
    task = build_fsdd("speaker-held-out")
    assert sizes(task) == {"train": 2000, "val": 500, "test": 500}
    assert speakers(task, "test") == {"theo"} and speakers(task, "val") == {"george"}
    assert speakers(task, "train") == set(SPEAKERS) - {"theo", "george"}


def test_training_subset_is_balanced_over_digits_and_speakers(fsdd):
    task = build_fsdd("speaker-held-out", train_per_digit=8)
    assert torch.bincount(task.splits["train"][1]).tolist() == [8] * 10
    voices = [parse_clip(p).speaker for p in task.info["clips"]["train"]]
    assert {v: voices.count(v) for v in set(voices)} == dict.fromkeys(
        ["jackson", "lucas", "nicolas", "yweweler"], 20)
    assert len(task.splits["test"][1]) == 500  # evaluation parts stay whole
    with pytest.raises(UserError, match="split must be one of official, speaker-held-out"):
        build_fsdd("random")


def test_log_mel_matches_torchaudio_on_the_same_clip(fsdd):
    task = build_fsdd("official")
    x, _ = task.splits["test"]
    assert x.shape[1:] == (1, 40, 101)
    mean, std = task.info["normalisation"]
    for position in (0, 137):
        path = fsdd / task.info["clips"]["test"][position]
        samples, rate = soundfile.read(path, dtype="int16")
        assert rate == 8000 and len(samples) < 8000
        waveform = np.zeros(8000, dtype=np.float32)
        start = (8000 - len(samples)) // 2
        waveform[start : start + len(samples)] = samples / 32768.0
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=8000, n_fft=200, win_length=200, hop_length=80, n_mels=40
        )(torch.from_numpy(waveform))
        expected = (torch.log(mel + 1e-6) - mean) / std
        assert torch.allclose(x[position, 0], expected, atol=1e-4)
    train = task.splits["train"][0]
    assert torch.allclose(train.mean(dim=(0, 1, 3)), torch.zeros(40), atol=1e-4)  # per band
    assert torch.allclose(train.std(dim=(0, 1, 3)), torch.ones(40), atol=1e-3)


def test_fix_length_centres_short_clips_and_keeps_the_middle_of_long_ones():
    front_end = FrontEnd()
    short = front_end.fix_length(torch.ones(3001))
    assert short.shape == (8000,)
    assert short[2498:2500].tolist() == [0, 1] and short[5499:5501].tolist() == [1, 0]
    long = front_end.fix_length(torch.arange(9000.0))
    assert long[0] == 500 and long[-1] == 8499


def features_batch(count: int = 32) -> torch.Tensor:
    return torch.randn(count, 1, 40, 101, generator=torch.Generator().manual_seed(1))


def test_spec_augment_masks_whole_bands_and_frames_reproducibly():
    x = features_batch()
    state = torch.get_rng_state()
    out = spec_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # torch's global generator is left alone
    assert torch.equal(out, spec_augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, spec_augment(x, torch.Generator().manual_seed(1)))
    zero = out == 0
    bands = zero.all(dim=3)[:, 0]  # [B, mel]: whole bands masked
    frames = zero.all(dim=2)[:, 0]  # [B, frames]: whole frames masked
    changed = out != x
    assert (changed[:, 0] == (bands[:, :, None] | frames[:, None, :])).all()  # nothing else changed
    assert bands.any(1).float().mean() > 0.5 and frames.any(1).float().mean() > 0.5
    assert bands.sum(1).max() <= 2 * 6 and frames.sum(1).max() <= 2 * 10


def test_shift_noise_shifts_by_at_most_ten_frames_and_repeats_the_edges():
    x = torch.zeros(200, 1, 40, 101)
    x[..., 50] = 1.0
    shifted = shift_noise(x, torch.Generator().manual_seed(0), noise=0.0)
    peaks = shifted[:, 0, 0].argmax(1) - 50
    assert peaks.abs().max() == 10 and len(peaks.unique()) == 21
    ramp = torch.arange(101.0).expand(4, 1, 40, 101)
    edges = shift_noise(ramp, torch.Generator().manual_seed(3), noise=0.0)
    steps = edges[..., 1:] - edges[..., :-1]
    # edges repeated, not wrapped around
    assert torch.isin(steps, torch.tensor([0.0, 1.0])).all() and (steps == 0).any()
    noisy = shift_noise(x, torch.Generator().manual_seed(0))
    assert 0.09 < (noisy - shifted).std() < 0.11


@pytest.mark.parametrize("augment", ["specaugment", "shift-noise"])
def test_augmentation_is_off_at_evaluation(fsdd, augment):
    task = build_fsdd("official", train_per_digit=10)
    recipe = Recipe(epochs=1, batch_size=64, lr=0.1, augment=augment)
    for split in ("val", "test"):
        batch = next(iter(task.batches(split, recipe, None)))
        assert torch.equal(batch["x"], task.splits[split][0][: len(batch["x"])])
    train = next(iter(task.batches("train", recipe, torch.Generator().manual_seed(0))))
    assert not torch.equal(train["x"], task.splits["train"][0][train["index"]])
    assert not task.deterministic(recipe) and task.deterministic(recipe.updated({"augment": None}))


def copy_fsdd(tmp_path: Path, source: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(source, root / "fsdd")
    return root


def test_missing_recording_is_one_line_naming_it(tmp_path, monkeypatch, fsdd, cli):
    root = copy_fsdd(tmp_path, fsdd)
    (root / "fsdd" / "recordings" / "3_theo_7.wav").unlink()
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    message = r"file recordings/3_theo_7.wav not found at .*kdbench data fetch fsdd"
    with pytest.raises(DatasetMissingError, match=message):
        build_fsdd()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [fsdd-speaker]\nmethods: [kd]\n"
                     "pairs: [{teacher: res-cnn, student: ds-cnn-xs}]\n")
    code, _, err = cli("run", suite)
    assert code == 2 and err.count("\n") == 1 and "recordings/3_theo_7.wav not found" in err


def test_corrupt_recording_is_refused_even_with_features_cached(tmp_path, monkeypatch, fsdd):
    root = copy_fsdd(tmp_path, fsdd)
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    build_fsdd(train_per_digit=1)  # fills the feature cache
    path = root / "fsdd" / "recordings" / "5_lucas_20.wav"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetMissingError, match="5_lucas_20.wav is corrupt"):
        build_fsdd()


def test_tampered_manifest_is_refused(tmp_path, monkeypatch, fsdd):
    """A recording replaced along with its manifest line is caught: the manifest hash is pinned."""
    root = copy_fsdd(tmp_path, fsdd)
    manifest = root / "fsdd" / MANIFEST
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1][:-64] + "0" * 64
    manifest.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    with pytest.raises(DatasetMissingError, match="MANIFEST.tsv is corrupt"):
        build_fsdd()


def test_data_fetch_downloads_every_recording_the_manifest_lists(tmp_path, monkeypatch, fsdd, cli):
    """`kdbench data fetch fsdd` over a file:// mirror: the manifest first, then the recordings."""
    import kdbench_speech.fsdd as module

    monkeypatch.setattr(module, "UPSTREAM", fsdd.as_uri() + "/")
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("KDBENCH_DATA", str(fresh))
    code, _, err = cli("data", "fetch", "fsdd")
    where = fresh / "fsdd" / MANIFEST
    assert code == 2 and f"MANIFEST.tsv has no download address; put it at {where}" in err
    (fresh / "fsdd").mkdir(parents=True)
    shutil.copy(fsdd / MANIFEST, fresh / "fsdd" / MANIFEST)
    code, out, err = cli("data", "fetch", "fsdd")
    assert code == 0, err
    assert "3000 file(s) downloaded, 1 already present" in out


@pytest.mark.parametrize("spec", [RES_CNN, DS_CNN_S, DS_CNN_XS], ids=lambda s: s.name)
def test_models_return_logits_and_time_frequency_features(spec):
    x = features_batch(5)
    task = ClassificationTask({"train": (x, torch.arange(5))}, num_classes=10, recipes={})
    output, features = spec.build(task).eval()(x)
    assert output.shape == (5, 10)
    assert {name: tuple(f.shape) for name, f in features.items() if name != "embedding"} == {
        "stage1": (5, features["stage1"].shape[1], 10, 26),
        "stage2": (5, features["stage2"].shape[1], 5, 13),
        "stage3": (5, features["stage3"].shape[1], 5, 13),
    }
    assert features["embedding"].shape == (5, features["stage3"].shape[1])


def test_model_sizes():
    task = ClassificationTask({"train": (features_batch(2), torch.arange(2))}, num_classes=10,
                              recipes={})
    count = {spec.name: sum(p.numel() for p in spec.build(task).parameters())
             for spec in (RES_CNN, DS_CNN_S, DS_CNN_XS)}
    assert 200_000 < count["res-cnn"] < 600_000
    assert 20_000 < count["ds-cnn-s"] < 30_000  # DS-CNN-S is 24K in Hello Edge
    assert 8_000 < count["ds-cnn-xs"] < 12_000


TINY = """
name: tiny-speech
seeds: 1
tasks: [{name: fsdd-speaker, options: {train_per_digit: 6}}]
pairs: [{teacher: res-cnn, student: ds-cnn-xs}]
methods: [student-only, kd, at, rkd]
recipe:
  teacher: {epochs: 1}
  student: {epochs: 1, augment: specaugment}
"""


@pytest.mark.smoke
def test_speech_suite_runs_end_to_end_with_feature_and_relation_methods(fsdd, cli, isolated):
    suite = isolated / "tiny.yaml"
    suite.write_text(TINY)
    code, out, err = cli("run", suite)
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-speech").experiment_id])
    assert len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["kdbench.modality"] for r in runs} == {"speech"}
    for run in runs:
        assert 0 <= run.data.metrics["test_accuracy"] <= 1 and run.data.metrics["latency_ms"] > 0
