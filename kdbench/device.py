"""Where a run computes, and in what precision: the one place both are resolved and data is moved.

Tasks build their batches on the CPU, in host memory; the engine moves each batch to the run's
device as it enters a model (``to_device``), and ``call_model`` does the same for evaluation, so
no task or method names a device. Checkpoints are written from wherever the model lived and
always read to the CPU first, so a teacher cached on a GPU machine loads on a CPU one.

Mixed precision runs the forward passes under ``torch.autocast``; the losses that compare
distributions (log-softmax, KL) are computed in fp32 whatever the precision (the engine hands
methods ``full_precision`` outputs), because bf16's 8-bit mantissa turns small KL terms into noise.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from kdbench.errors import UserError
from kdbench.model import ModelOutput

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(name: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; a device
    this machine does not have is a one-line user error, not a traceback deep in a run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); "
                            "use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def device_name(device: torch.device) -> str:
    """What a run records of its device: ``cpu``, or ``cuda:N (the GPU's name)``."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def to_device(value: Any, device: torch.device, channels_last: bool = False) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples) on ``device``; other values as they are.

    Host tensors bound for a GPU are pinned first, so the copy runs asynchronously beside the
    computation; a tensor already there is returned as it is (no copy). ``channels_last`` lays
    4-D floating tensors (image batches) out as a channels-last model wants them.
    """
    if isinstance(value, torch.Tensor):
        if channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        if value.device == device:
            return value
        if device.type == "cuda" and value.device.type == "cpu":
            return value.pin_memory().to(device, non_blocking=True)
        return value.to(device)
    if isinstance(value, dict):
        return {key: to_device(item, device, channels_last) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple keeps its type
        return type(value)(*(to_device(item, device, channels_last) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device, channels_last) for item in value)
    return value


def full_precision(output: ModelOutput) -> ModelOutput:
    """A model's output with its reduced-precision tensors (output and named features) in fp32; a
    teacher's hidden features stay hidden (a mapping that is not a plain dict is left as it is)."""
    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
            return value.float()
        return value

    features = output.features
    if type(features) is dict:
        features = {name: cast(value) for name, value in features.items()}
    return ModelOutput(cast(output.output), features)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU for a model with neither)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Forward passes in ``precision``: a no-op for fp32, ``torch.autocast`` otherwise."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def gradient_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaling (gradients underflow without it); disabled, so a pass-through, otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextlib.contextmanager
def determinism(device: torch.device, on: bool) -> Iterator[None]:
    """Within, torch uses deterministic kernels only (an op without one raises rather than varies)
    when ``on``; on CUDA cuBLAS needs its workspace fixed too. The flags are the process's, so they
    are put back afterwards: the next run in the same process gets its own recipe's mode."""
    if not on:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[1], before[2]
