"""Calling a model the same way everywhere: inputs unpacked, output normalised."""

from __future__ import annotations

from typing import Any

from torch import nn

from kdbench.model import ModelOutput


def call_model(model: nn.Module, inputs: Any) -> ModelOutput:
    """Call ``model`` on a task's model input; a tuple input is unpacked into arguments.

    Models should return ``ModelOutput``; a plain ``(output, features)`` pair or a bare
    output (a black-box model) is accepted and normalised.
    """
    result = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    if isinstance(result, ModelOutput):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return ModelOutput(*result)
    return ModelOutput(result, {})
