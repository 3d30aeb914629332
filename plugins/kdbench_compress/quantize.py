"""Int8 students: post-training dynamic quantisation of their Linear layers.

``torch.ao.quantization.quantize_dynamic`` stores each Linear's weight as int8 and quantises its input
at every call (fbgemm kernels); every other layer stays fp32. It was chosen by measurement on this
project's CPU machine: the only int8 path both four times smaller than fp32 and faster (0.56x the fp32
time at batch 256), where torchao's eager int8 dynamic path, which torch.ao's deprecation notice points
to, ran about 27x slower (pytorch/ao#4365).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from kdbench import IncompatibleCombination, StudentTransform, Task

BACKEND = "torch.ao quantize_dynamic (fbgemm): Linear weights int8, activations quantised per call; other layers fp32"
"""What converts a student to int8, shown with its rows (``int8-qat`` converts the same way)."""


def quantised_layers(model: nn.Module) -> list[nn.Linear]:
    """The layers ``quantize_dynamic`` converts: exactly ``nn.Linear``, since its mapping goes by type and
    leaves subclasses (MultiheadAttention's ``out_proj``) in fp32."""
    return [module for module in model.modules() if type(module) is nn.Linear]


def require_linear(model: nn.Module, label: str) -> None:
    """Refuse a model int8 conversion would leave as it is, before anything trains it."""
    if not quantised_layers(model):
        raise IncompatibleCombination(f"{label}: {type(model).__name__} has no Linear layer to quantise")


def int8(model: nn.Module, label: str) -> nn.Module:
    """A CPU copy of ``model`` with int8 Linear layers (``model`` itself is left as it is)."""
    require_linear(model, label)
    with warnings.catch_warnings():
        # torch.ao.quantization announces its removal in favour of torchao, whose int8 path is the slow
        # one here (module docstring); it is used by measurement, so only these two notices are hushed:
        # the module's (pytorch/ao#2259) and that of its qint8 tensors (pytorch/pytorch#184982)
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, torch.quantize_per_channel", UserWarning)
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu(), {nn.Linear}, dtype=torch.qint8,
                                                      inplace=True)


class Int8Dynamic(StudentTransform):
    """Post-training dynamic int8 quantisation of the Linear layers: the student is trained in fp32 and
    converted once trained, with no calibration data."""

    name = "int8-dynamic"
    description = "post-training dynamic quantisation: Linear weights int8, activations quantised per call"
    cpu_only = True

    @property
    def backend(self) -> str:
        return BACKEND

    def before_training(self, model: nn.Module, task: Task) -> nn.Module:
        require_linear(model, self.label)
        return model

    def after_training(self, model: nn.Module, task: Task) -> nn.Module:
        return int8(model, self.label)
