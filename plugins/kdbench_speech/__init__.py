"""Speech: spoken-digit keyword spotting on the Free Spoken Digit Dataset with log-mel CNNs."""

from __future__ import annotations

from functools import partial

from kdbench import DatasetSpec, ModelSpec, TaskSpec, UserError, hookimpl
from kdbench_speech import models
from kdbench_speech.fsdd import build_fsdd, dataset_spec, manifest_spec


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [
        TaskSpec("fsdd", "classification", "speech", partial(build_fsdd, "official"),
                 "Free Spoken Digit Dataset, official split: recording index 0-4 test, 5-9 "
                 "validation, 10-49 train; 1 s log-mel inputs",
                 options={"train_per_digit": None}),
        TaskSpec("fsdd-speaker", "classification", "speech",
                 partial(build_fsdd, "speaker-held-out"),
                 "Free Spoken Digit Dataset, speaker held out: theo test, george validation, "
                 "the other four speakers train; 1 s log-mel inputs",
                 options={"train_per_digit": None}),
    ]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    """ds-cnn-s teaches too: a second, different teacher for multi-teacher distillation."""
    return [models.RES_CNN, models.DS_CNN_S]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [models.DS_CNN_S, models.DS_CNN_XS]


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    """Every recording once the data root holds the pinned manifest; before that the manifest alone,
    so that ``kdbench data fetch fsdd`` says where to put it."""
    try:
        return [dataset_spec()]
    except UserError:
        return [manifest_spec()]
