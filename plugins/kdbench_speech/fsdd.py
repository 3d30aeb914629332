"""The Free Spoken Digit Dataset (FSDD): 3,000 canonical WAVs under ``<data root>/fsdd``.

Every recording is checked against the data root's ``MANIFEST.tsv``, and the manifest itself
against a SHA-256 pinned here: a manifest edited to match a changed recording is caught too.
Decoding and the front end run once per (manifest, front end) and are cached; the checks run
on every build.

Two protocols, registered as two tasks because leaderboards group runs by task name:

- ``fsdd`` (split ``official``): upstream's test set, recording index 0-4; index 5-9 is held
  out for validation, 10-49 trains (300 / 300 / 2,400 clips, every speaker in every split).
- ``fsdd-speaker`` (split ``speaker-held-out``): speaker ``theo`` is the test set and ``george``
  validation; the other four train (500 / 500 / 2,000). The test voice is never heard in
  training, which is where a small student falls behind its teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import soundfile
import torch

from kdbench import ClassificationTask, DatasetFile, DatasetSpec, Recipe, UserError, cache_dir
from kdbench_speech.augment import AUGMENTATIONS
from kdbench_speech.frontend import FrontEnd

MANIFEST = "MANIFEST.tsv"
MANIFEST_SHA256 = "dd0193496325e30bf5e594e9a8eb633a601964d04646630627d31e5a9e6c7ad1"
UPSTREAM = ("https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/"
            "26eb9aaf76e81b692f806f9140c2d2777410d7a1/")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
TEST_SPEAKER, VAL_SPEAKER = "theo", "george"
SPLITS = ("official", "speaker-held-out")
DESCRIPTION = "Free Spoken Digit Dataset: 3,000 8 kHz recordings of digits 0-9 by six speakers"
LICENCE = "CC BY-SA 4.0"


@dataclass(frozen=True)
class Clip:
    """One recording, as its file name ``recordings/{digit}_{speaker}_{index}.wav`` says."""

    path: str
    digit: int
    speaker: str
    index: int


def parse_clip(path: str) -> Clip:
    """Digit, speaker and recording index of a manifest path; a malformed name is a UserError."""
    parts = PurePosixPath(path).stem.split("_")
    valid = (len(parts) == 3 and path.startswith("recordings/") and path.endswith(".wav")
             and parts[0].isdigit() and int(parts[0]) < 10 and parts[1] in SPEAKERS
             and parts[2].isdigit())
    if not valid:
        raise UserError(f"dataset 'fsdd': {path} is not recordings/<digit>_<speaker>_<index>.wav")
    return Clip(path, int(parts[0]), parts[1], int(parts[2]))


def manifest_spec() -> DatasetSpec:
    """The manifest alone: what can be checked before the recordings are known."""
    return DatasetSpec("fsdd", (DatasetFile(MANIFEST, MANIFEST_SHA256),), DESCRIPTION, LICENCE)


def dataset_spec() -> DatasetSpec:
    """The manifest and every recording it lists, each with its upstream address."""
    lines = manifest_spec().path(MANIFEST).read_text().splitlines()
    if not lines or lines[0].split("\t") != ["file", "bytes", "sha256"]:
        raise UserError(f"dataset 'fsdd': {MANIFEST} lacks its header 'file, bytes, sha256'")
    recordings = []
    for line in lines[1:]:
        path, _, sha256 = line.split("\t")
        recordings.append(DatasetFile(path, sha256, UPSTREAM + path))
    return DatasetSpec("fsdd", (*manifest_spec().files, *recordings), DESCRIPTION, LICENCE)


def load_features(front_end: FrontEnd) -> tuple[list[Clip], torch.Tensor]:
    """Every clip and its log-mel features [N, n_mels, frames], in manifest order.

    Every file is checked against its SHA-256 first (a missing or corrupt one is a one-line
    error naming it). The features are cached under the kdbench cache dir, keyed by the
    pinned manifest hash and the front end's parameters, and written atomically so that
    concurrent runs never read half a file.
    """
    spec = dataset_spec()
    paths = {item.path: spec.path(item.path) for item in spec.files if item.path != MANIFEST}
    clips = [parse_clip(path) for path in paths]
    key = hashlib.sha256(json.dumps([MANIFEST_SHA256, front_end.params()], sort_keys=True).encode())
    cached = cache_dir() / "fsdd" / f"logmel-{key.hexdigest()[:16]}.pt"
    if cached.is_file():
        return clips, torch.load(cached, weights_only=True)
    waveforms = torch.stack([
        front_end.fix_length(torch.from_numpy(soundfile.read(path, dtype="float32")[0]))
        for path in paths.values()
    ])
    features = torch.cat([front_end.log_mel(chunk) for chunk in waveforms.split(500)])
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=cached.parent, suffix=".part")
    os.close(handle)
    torch.save(features, partial)
    os.replace(partial, cached)
    return clips, features


def split_of(clip: Clip, split: str) -> str:
    """Which part ('train', 'val', 'test') of protocol ``split`` a clip belongs to."""
    if split == "official":
        return "test" if clip.index < 5 else "val" if clip.index < 10 else "train"
    if clip.speaker == TEST_SPEAKER:
        return "test"
    return "val" if clip.speaker == VAL_SPEAKER else "train"


def partition(clips: list[Clip], split: str, train_per_digit: int | None) -> dict[str, list[int]]:
    """Positions of the clips in each part, sorted by (digit, index, speaker).

    ``train_per_digit`` keeps that many training clips of each digit, the lowest recording
    indices first with every training speaker alike — a small, balanced subset for fast runs.
    """
    if split not in SPLITS:
        raise UserError(f"fsdd: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if train_per_digit is not None and train_per_digit <= 0:
        raise UserError(f"fsdd: train_per_digit must be a positive count, got {train_per_digit}")
    order = sorted(range(len(clips)),
                   key=lambda i: (clips[i].digit, clips[i].index, clips[i].speaker))
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i in order:
        parts[split_of(clips[i], split)].append(i)
    if train_per_digit is not None:
        seen = [0] * 10
        kept = []
        for i in parts["train"]:
            seen[clips[i].digit] += 1
            if seen[clips[i].digit] <= train_per_digit:
                kept.append(i)
        parts["train"] = kept
    return parts


def build_fsdd(split: str = "official", train_per_digit: int | None = None) -> ClassificationTask:
    """Normalised log-mel inputs [1, 40, 101]: each mel band by its training-split mean and std.

    Teachers train with SpecAugment (in a trial it lifted res-cnn from 75% to 91% on the
    held-out speaker), students on clean features: their inputs are then the same every
    epoch, so logit methods reuse the teacher's cached outputs, and the teacher's robustness
    reaches a student only through distillation — as Hinton et al.'s jittered MNIST teacher.
    """
    front_end = FrontEnd()
    clips, features = load_features(front_end)
    parts = partition(clips, split, train_per_digit)
    train = features[parts["train"]]
    mean, std = train.mean(dim=(0, 2), keepdim=True), train.std(dim=(0, 2), keepdim=True)
    labels = torch.tensor([clip.digit for clip in clips])
    splits = {name: (((features[index] - mean) / std).unsqueeze(1), labels[index])
              for name, index in parts.items()}
    student = Recipe(epochs=20, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=1e-3)
    teacher = student.updated({"augment": "specaugment"})
    return ClassificationTask(
        splits, num_classes=10, recipes={"teacher": teacher, "student": student},
        augmentations=AUGMENTATIONS, front_end=front_end.params(),
        normalisation=(mean.squeeze(0), std.squeeze(0)),
        clips={name: [clips[i].path for i in index] for name, index in parts.items()},
    )
