"""A training recipe: how long and how one model is trained, per role.

Tasks give a default recipe per role; a model may prefer changes (a dropout teacher
wants input jitter); a suite may override any field. The resolved recipe is part of
every run's config hash, so changing any field means a different run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(gt=0, le=10_000)
    batch_size: int = Field(gt=0, le=1_000_000)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    milestones: tuple[int, ...] = ()
    """For ``step``: the epochs after which the rate is multiplied by ``gamma`` (RepDistiller's CIFAR
    recipe: 150, 180, 210 of 240, ×0.1)."""
    gamma: float = Field(default=0.1, gt=0, le=1)
    augment: str | None = None
    """A task-defined augmentation name (e.g. ``jitter2``); ``None`` keeps inputs deterministic."""
    train_examples: int | None = Field(default=None, gt=0)
    """Train on only this many training examples: a fixed class-stratified subset the task draws once,
    the same for every method and seed (the few-labels setting of Hinton et al. 2015, where soft
    targets matter most); evaluation still covers every split in full. ``None``: all of them."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """The forward passes' precision (``torch.autocast``; fp16 with loss scaling). Losses are computed
    in fp32 whatever it is: the engine hands methods fp32 outputs."""
    channels_last: bool = False
    """Convolutional models and their 4-D inputs in channels-last memory layout (faster convolutions
    on recent GPUs and CPUs with oneDNN; no change in what is computed)."""
    compile: bool = False
    """Train through ``torch.compile`` (the first epoch pays for compiling)."""
    warmup_steps: int = Field(default=0, ge=0, le=1_000_000)
    """The learning rate rises linearly from zero over this many optimiser steps (GPT training's
    warm-up): Adam's first updates are otherwise the full rate on every weight at once, which can
    leave a transformer on the unigram plateau for a whole epoch (a seed of gpt-char-2m did)."""
    clip_grad_norm: float | None = Field(default=None, gt=0)
    """Clip the gradients' global L2 norm to this before each step (``None``: no clipping)."""
    deterministic: bool = False
    """Deterministic kernels only (on CUDA also cuBLAS's fixed workspace): reruns repeat bit for bit
    on the same machine, at some speed; the leaderboard says which mode produced its rows."""

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Fields added after run keys were first published are left out at their defaults, so the
        # keys of recipes that never set them stay as they were (and finished runs are found again).
        data = handler(self)
        for name, default in LATER_FIELDS.items():
            if data.get(name, default) == default:
                data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _milestones_fit(self) -> Recipe:
        if self.schedule == "step" and not self.milestones:
            raise ValueError("schedule 'step' needs milestones (the epochs after which the rate drops)")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            # milestones past the last epoch are allowed (never reached): a short run of a long recipe
            raise ValueError(f"milestones must be increasing positive epochs, got {list(self.milestones)}")
        return self

    def updated(self, overrides: dict[str, Any]) -> Recipe:
        """A copy with ``overrides`` applied and validated."""
        return Recipe.model_validate({**self.model_dump(), **overrides})


LATER_FIELDS: dict[str, Any] = {"train_examples": None, "precision": "fp32", "channels_last": False,
                                "compile": False, "deterministic": False, "milestones": (), "gamma": 0.1,
                                "warmup_steps": 0, "clip_grad_norm": None}
"""Each later field's default, which the serialised recipe (and so the run key) leaves out."""
