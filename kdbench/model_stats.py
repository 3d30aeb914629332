"""Size and speed of a model, measured the same way for every model on the leaderboard.

Latency is single-sample CPU inference (batch 1), the median of repeated calls on one
thread, so figures from different runs on one machine can be compared — also for a model
trained on a GPU (measured on a CPU copy); its GPU latency is a column of its own. Size is
also what shipping the model costs: the bytes of its saved state dict, and of that file
compressed. A compression suite asks for the deployed view as well (``deployment``): batch 64
beside batch 1, and every core beside one.
"""

from __future__ import annotations

import copy
import io
import os
import statistics
import time
import zlib
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kdbench.device import model_device
from kdbench.model_call import call_model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


REPEATS = 50
"""Timed calls per latency figure, after three untimed ones; the median is reported."""


@torch.no_grad()
def measure(model: nn.Module, sample: Any) -> dict[str, float]:
    """``params``, ``flops`` (one forward on ``sample``), ``latency_ms`` (median, one thread), and
    the stored size (``disk_bytes``, ``zip_bytes``)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        call_model(model, sample)
    try:
        latency = median_ms(model, sample, threads=1)
    finally:
        model.train(was_training)
    return {
        "params": float(parameter_count(model)),
        "flops": float(counter.get_total_flops()),
        "latency_ms": latency,
        **stored_size(model),
    }


@torch.no_grad()
def deployment_latency(model: nn.Module, batch: Any, single: Any) -> dict[str, float]:
    """Median latency in ms at batch 64 on one thread (``latency_ms_b64``), and at batch 1 and 64 on
    every core (``latency_ms_all``, ``latency_ms_b64_all``): how a server and a device would run it.
    ``batch`` is the task's ``deployment_input`` of 64 (``None``: no batch figures)."""
    was_training = model.training
    model.eval()
    cores = os.cpu_count() or 1
    try:
        found = {"latency_ms_all": median_ms(model, single, threads=cores)}
        if batch is not None:
            found["latency_ms_b64"] = median_ms(model, batch, threads=1)
            found["latency_ms_b64_all"] = median_ms(model, batch, threads=cores)
    finally:
        model.train(was_training)
    return found


def median_ms(model: nn.Module, sample: Any, threads: int) -> float:
    """The median of ``REPEATS`` timed calls on ``threads`` threads, after three untimed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(3):
            call_model(model, sample)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            call_model(model, sample)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times) * 1000


def stored_size(model: nn.Module) -> dict[str, float]:
    """Bytes of the state dict as ``torch.save`` writes it, and deflate-compressed (what a zip of it
    weighs): int8 weights are a quarter of fp32 in both, while zeros left in dense tensors shrink
    only the second — which is why masks are not offered as compression."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    raw = buffer.getvalue()
    return {"disk_bytes": float(len(raw)), "zip_bytes": float(len(zlib.compress(raw, 6)))}


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
