"""Calling a model the same way everywhere: inputs unpacked, output normalised."""

from __future__ import annotations

from typing import Any

from torch import nn

from kdbench.device import model_device, to_device
from kdbench.model import ModelOutput


def call_model(model: nn.Module, inputs: Any) -> ModelOutput:
    """Call ``model`` on a task's model input; a tuple input is unpacked into arguments.

    The inputs are moved to the model's device first (a no-op on the CPU), so a task evaluating a
    model need not know where it lives. Models should return ``ModelOutput``; a plain
    ``(output, features)`` pair or a bare output (a black-box model) is accepted and normalised.
    """
    inputs = to_device(inputs, model_device(model))
    result = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    if isinstance(result, ModelOutput):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return ModelOutput(*result)
    return ModelOutput(result, {})
