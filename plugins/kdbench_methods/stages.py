"""Training several models one after another inside one run (born-again generations, teacher
assistants): each stage is the generic loop with plain KD, or labels alone, and its own curves."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from kdbench import Method, Teacher, TrainContext, train
from kdbench_methods.kd import KD
from kdbench_methods.student_only import StudentOnly


def frozen(context: TrainContext, model: nn.Module) -> Teacher:
    """A trained stage as the next one's teacher: KD reads its logits (cached when inputs are deterministic)."""
    return Teacher(context.task, model, method=KD.name, needs=KD.needs,
                   cached=context.task.deterministic(context.recipe))


def train_stage(context: TrainContext, model: nn.Module, teacher: Teacher | None,
                prefix: str | None, main: bool, T: float, alpha: float) -> nn.Module:
    """Train ``model`` with the run's recipe and seed: by KD from ``teacher``, else on labels.

    Each epoch's metrics are logged with ``prefix`` (e.g. ``gen1_val_accuracy``); those of the
    ``main`` stage — the one whose model the run returns — also as the run's own curves.
    """
    teachers = [teacher] if teacher is not None else []
    method: Method = KD(context.task, teachers, T=T, alpha=alpha) if teachers else StudentOnly(context.task, [])

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if prefix is not None:
            context.log({prefix + key: value for key, value in metrics.items()}, epoch)
        if main:
            context.on_epoch(epoch, metrics)

    return train(replace(context, model=model, method=method, teachers=tuple(teachers), on_epoch=on_epoch))
