"""A training recipe: how long and how one model is trained, per role.

Tasks give a default recipe per role; a model may prefer changes (a dropout teacher
wants input jitter); a suite may override any field. The resolved recipe is part of
every run's config hash, so changing any field means a different run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(gt=0, le=10_000)
    batch_size: int = Field(gt=0, le=1_000_000)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    schedule: Literal["constant", "cosine"] = "cosine"
    augment: str | None = None
    """A task-defined augmentation name (e.g. ``jitter2``); ``None`` keeps inputs deterministic."""
    train_examples: int | None = Field(default=None, gt=0)
    """Train on only this many training examples: a fixed class-stratified subset the task draws once,
    the same for every method and seed (the few-labels setting of Hinton et al. 2015, where soft
    targets matter most); evaluation still covers every split in full. ``None``: all of them."""

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset, the field is left out, so the run keys of recipes that never set it stay as they were.
        data = handler(self)
        if data.get("train_examples") is None:
            data.pop("train_examples", None)
        return data

    def updated(self, overrides: dict[str, Any]) -> Recipe:
        """A copy with ``overrides`` applied and validated."""
        return Recipe.model_validate({**self.model_dump(), **overrides})
