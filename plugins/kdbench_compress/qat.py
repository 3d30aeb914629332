"""Quantisation-aware training: the student trains through the rounding its int8 conversion will apply.

Each Linear that ``quantize_dynamic`` converts computes, while training, what its int8 counterpart
will: the weight rounded by the observer that conversion uses, the input rounded as fbgemm's dynamic
Linear rounds it at run time, with straight-through gradients (``fake_quantize_per_tensor_affine``).
The layer keeps its class's parameters, so the state dict and the features a method reads are those of
the plain student; conversion after training is ``Int8Dynamic``'s.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import MinMaxObserver, default_dynamic_qconfig

from kdbench import StudentTransform, Task
from kdbench_compress.quantize import BACKEND, int8, quantised_layers, require_linear

WEIGHT_OBSERVER = default_dynamic_qconfig.weight
"""What ``quantize_dynamic`` rounds a Linear's weight by: per-tensor symmetric qint8 from its min/max."""

INPUT_OBSERVER = functools.partial(MinMaxObserver, dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                   quant_min=0, quant_max=127)
"""What the int8 Linear rounds its input by at each call: per-tensor affine quint8 from the input's
min/max, on 7 bits (``DynamicQuantizedLinear`` asks fbgemm for ``reduce_range``, which keeps its int16
accumulation of products from overflowing)."""


def fake_quantised(tensor: torch.Tensor, observer_class: functools.partial) -> torch.Tensor:
    """``tensor`` rounded to the grid a fresh observer of it chooses; gradients pass straight through."""
    observer = observer_class().to(tensor.device)
    observer(tensor)
    scale, zero_point = observer.calculate_qparams()
    return torch.fake_quantize_per_tensor_affine(tensor, scale, zero_point.to(torch.int32),
                                                 observer.quant_min, observer.quant_max)


class FakeQuantLinear(nn.Linear):
    """A Linear that computes what its dynamic int8 conversion will compute. A subclass with no state of
    its own, so a layer becomes one (and back) by its class alone, keeping weights, optimiser references
    and weight tying."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quantised(x, INPUT_OBSERVER), fake_quantised(self.weight, WEIGHT_OBSERVER), self.bias)


class Int8QAT(StudentTransform):
    """Quantisation-aware training ending in the same int8 student as ``int8-dynamic``: the method
    trains the student through fake-quantised Linear layers, so it learns weights that survive the
    rounding."""

    name = "int8-qat"
    description = "quantisation-aware training (fake-quantised Linear layers), then dynamic int8 conversion"
    cpu_only = True

    @property
    def backend(self) -> str:
        return f"fake_quantize_per_tensor_affine while training, then {BACKEND}"

    def before_training(self, model: nn.Module, task: Task) -> nn.Module:
        require_linear(model, self.label)
        for layer in quantised_layers(model):
            layer.__class__ = FakeQuantLinear
        return model

    def after_training(self, model: nn.Module, task: Task) -> nn.Module:
        plain = copy.deepcopy(model)
        for layer in plain.modules():
            if type(layer) is FakeQuantLinear:
                layer.__class__ = nn.Linear
        return int8(plain, self.label)
