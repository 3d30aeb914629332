"""Training several models one after another inside one run (born-again generations, teacher
assistants): each stage is the generic loop with plain KD, or labels alone, and its own curves."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from kdbench import Method, TeacherOutputs, TrainContext, train
from kdbench_methods.kd import KD
from kdbench_methods.student_only import StudentOnly


def frozen(context: TrainContext, model: nn.Module) -> TeacherOutputs:
    """A trained stage as the next one's teacher (logits cached when inputs are deterministic)."""
    return TeacherOutputs(context.task, model, cached=context.task.deterministic(context.recipe))


def train_stage(context: TrainContext, model: nn.Module, teacher: TeacherOutputs | None,
                prefix: str | None, main: bool, T: float, alpha: float) -> nn.Module:
    """Train ``model`` with the run's recipe and seed: by KD from ``teacher``, else on labels.

    Each epoch's metrics are logged with ``prefix`` (e.g. ``gen1_val_accuracy``); those of the
    ``main`` stage — the one whose model the run returns — also as the run's own curves.
    """
    if teacher is None:
        method: Method = StudentOnly(context.task, model, None)
    else:
        method = KD(context.task, model, None, T=T, alpha=alpha)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if prefix is not None:
            context.log({prefix + key: value for key, value in metrics.items()}, epoch)
        if main:
            context.on_epoch(epoch, metrics)

    return train(replace(context, model=model, method=method, teacher=teacher, on_epoch=on_epoch))
