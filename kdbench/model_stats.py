"""Size and speed of a model, measured the same way for every model on the leaderboard.

Latency is single-sample CPU inference (batch 1), the median of repeated calls on one
thread, so figures from different runs on one machine can be compared — also for a model
trained on a GPU (measured on a CPU copy); its GPU latency is a column of its own.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdbench.device import model_device
from kdbench.model_call import call_model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def measure(model: nn.Module, sample: Any, repeats: int = 30) -> dict[str, float]:
    """``params``, ``flops`` (one forward on ``sample``) and ``latency_ms`` (median)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        call_model(model, sample)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(3):
            call_model(model, sample)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call_model(model, sample)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    return {
        "params": float(parameter_count(model)),
        "flops": float(counter.get_total_flops()),
        "latency_ms": statistics.median(times) * 1000,
    }


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself when it lives on the CPU, else a CPU copy (the trained one stays where it is)."""
    if model_device(model).type == "cpu":
        return model
    return copy.deepcopy(model).cpu()


@torch.no_grad()
def device_latency(model: nn.Module, sample: Any, repeats: int = 30) -> float:
    """Median single-sample latency in ms on the model's own (CUDA) device, each call waited for."""
    was_training = model.training
    model.eval()
    try:
        for _ in range(3):
            call_model(model, sample)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call_model(model, sample)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000
