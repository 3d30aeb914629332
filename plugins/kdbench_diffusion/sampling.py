"""The model a denoising run returns: a denoiser plus how it is sampled, with diffusers' schedulers.

A teacher run returns its bare network, sampled with DDIM at the task's teacher step count;
a method returns a ``Sampler``, which says which scheme to use and at which step counts the
task should evaluate it. Calling a sampler is calling its network once, at (x_t, t), so the
parameters, FLOPs and latency the core measures are per network evaluation for every row;
the time to draw a whole sample at N steps is the task's ``sample_ms_n{N}`` metric.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import ModelOutput, UserError, call_model
from kdbench_diffusion.schedule import ddim_scheduler, lcm_scheduler

SCHEMES = ("ddim", "consistency")


class Sampler(nn.Module):
    def __init__(self, network: nn.Module, scheme: str, steps: tuple[int, ...], grid: int = 0) -> None:
        """``network`` predicts v at (x_t, t); ``steps``: the step counts it is meant for; ``grid``: the
        consistency model's distillation grid (the interval count LCMScheduler lays its timesteps on)."""
        super().__init__()
        if scheme not in SCHEMES:
            raise UserError(f"sampler scheme must be one of {SCHEMES}, got {scheme!r}")
        self.network = network
        self.scheme = scheme
        self.steps = tuple(steps)
        self.grid = grid

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
        return call_model(self.network, (x_t, t))

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples from ``noise`` in ``steps`` network evaluations (``generator`` feeds multistep
        consistency sampling's fresh noise; DDIM is deterministic)."""
        scheduler = ddim_scheduler(steps) if self.scheme == "ddim" else lcm_scheduler(steps, self.grid)
        x = noise
        for t in scheduler.timesteps:
            v = self(x, t.expand(len(x))).output
            x = scheduler.step(v, t, x, generator=generator).prev_sample
        return x


def as_sampler(model: nn.Module, teacher_steps: int) -> Sampler:
    """A run's model as a sampler: a bare network (a teacher) is sampled with DDIM at ``teacher_steps``."""
    return model if isinstance(model, Sampler) else Sampler(model, "ddim", (teacher_steps,))
