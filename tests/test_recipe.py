"""Recipe fields the engine follows: the step schedule, and which fields stay out of a run's key."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kdbench import Recipe
from kdbench.training.engine import make_optimizer, make_schedule


def test_the_step_schedule_drops_the_rate_after_each_milestone():
    recipe = Recipe(epochs=6, batch_size=8, lr=1.0, schedule="step", milestones=(2, 4), gamma=0.5)
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], recipe)
    schedule = make_schedule(optimizer, recipe)
    rates = []
    for _ in range(recipe.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("milestones", [(), (5, 3), (0, 2), (2, 2)])
def test_a_step_schedule_needs_increasing_positive_milestones(milestones: tuple[int, ...]):
    with pytest.raises(ValidationError, match="milestones"):
        Recipe(epochs=6, batch_size=8, lr=1.0, schedule="step", milestones=milestones)


def test_fields_at_their_defaults_stay_out_of_the_key_and_set_ones_go_in():
    base = Recipe(epochs=3, batch_size=8, lr=0.1)
    assert set(base.model_dump()) == {"epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                                      "schedule", "augment"}
    changed = {"precision": "bf16", "channels_last": True, "compile": True, "deterministic": True,
               "train_examples": 5, "schedule": "step", "milestones": (2,), "gamma": 0.5}
    assert base.updated(changed).model_dump() == {**base.model_dump(), **changed}
    assert Recipe.model_validate(base.updated(changed).model_dump()) == base.updated(changed)
