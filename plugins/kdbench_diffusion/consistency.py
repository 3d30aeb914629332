"""Song, Dhariwal, Chen & Sutskever, "Consistency Models" (ICML 2023, arXiv:2303.01469): consistency distillation."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from kdbench import Batch, Choice, Method, ModelOutput, Range
from kdbench_diffusion.frechet import freeze
from kdbench_diffusion.sampling import Sampler
from kdbench_diffusion.schedule import TIMESTEPS, boundary_scalings, ddim_step, predict_x0
from kdbench_diffusion.view import TimestepView

DISTANCES = ("l2", "pseudo-huber")


def consistency_function(network: nn.Module, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """f(x_t, t) = c_skip(t) x_t + c_out(t) x̂0(x_t, t), with LCMScheduler's boundary scalings.

    Sampling with ``LCMScheduler`` applies exactly this map, so training and sampling agree;
    at t ≤ 0 c_skip = 1 and c_out = 0, so f is the identity on clean data (the boundary condition).
    """
    t = t.clamp(min=0)
    return boundary_map(x_t, network(x_t, t).output, t)


def boundary_map(x_t: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The consistency function given the network's v-prediction at (x_t, t), t ≥ 0."""
    c_skip, c_out = boundary_scalings(t)
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    return c_skip.view(shape) * x_t + c_out.view(shape) * predict_x0(x_t, prediction, t)


def distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over the batch of the squared L2 distance per element, or of the pseudo-Huber distance
    sqrt(‖a − b‖² + c²) − c with c = 0.00054 √d (Song & Dhariwal 2023)."""
    difference = (a - b).flatten(1)
    if kind == "l2":
        return difference.pow(2).mean()
    c = 0.00054 * math.sqrt(difference.shape[1])
    return ((difference.pow(2).sum(1) + c * c).sqrt() - c).mean()


class Consistency(Method):
    """Consistency distillation of the teacher's probability-flow ODE, sampled with 1, 2, 4, 8 steps.

    The student (online network θ, initialised from the teacher) maps any point of a teacher DDIM
    trajectory to the trajectory's start; the target network θ⁻ is θ's exponential moving average
    (rate ``ema``), and is the model sampled, with ``LCMScheduler`` (multistep consistency
    sampling on the distillation grid). The ODE solver is one deterministic DDIM step of the
    teacher between adjacent grid times, ``intervals`` of them; ``distance`` is squared L2 or
    pseudo-Huber (LPIPS, the paper's best, has no MNIST counterpart).
    """

    name = "consistency"
    kinds = ("denoising",)
    scheme = "offline"
    needs = "model"
    view = TimestepView
    defaults = {"iterations": 1000, "intervals": 32, "ema": 0.95, "distance": "l2"}
    search_space = {"ema": Range(0.9, 0.999), "distance": Choice(DISTANCES)}
    """The target network's EMA rate from 0.9 to 0.999 around the default 0.95, and either distance; iterations
    are the budget and intervals the grid, kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not isinstance(params["iterations"], int) or params["iterations"] < 1:
            raise ValueError(f"iterations must be an integer ≥ 1, got {params['iterations']}")
        if params["intervals"] < 1 or TIMESTEPS % params["intervals"]:
            raise ValueError(f"intervals must be a power of two up to {TIMESTEPS}, got {params['intervals']}")
        if not 0 <= params["ema"] < 1:
            raise ValueError(f"ema must lie in [0, 1), got {params['ema']}")
        if params["distance"] not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {params['distance']!r}")

    def timesteps(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Times t_{n+1} on the ``intervals``-step grid t_n = n·1024/intervals − 1 (t_0 = −1: clean data),
        the grid LCMScheduler samples on."""
        gap = TIMESTEPS // self.intervals
        return torch.randint(1, self.intervals + 1, (count,), generator=generator) * gap - 1

    def prepare_student(self, student: nn.Module) -> None:
        if max(self.task.info["steps"]) > self.intervals:
            raise ValueError(f"consistency: intervals ({self.intervals}) must be ≥ the most sampling steps")
        student.load_state_dict(self.teachers[0].model.state_dict())
        self.target = freeze(copy.deepcopy(student))

    def train(self, mode: bool = True) -> Consistency:
        super().train(mode)
        if hasattr(self, "target"):
            self.target.eval()  # θ⁻ is never trained: it follows θ by its average
        return self

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        """d(f_θ(x_{t_{n+1}}, t_{n+1}), f_θ⁻(x̂_{t_n}, t_n)), x̂_{t_n} one teacher DDIM step from x_{t_{n+1}}
        (Algorithm 2; the weighting λ(t) is 1)."""
        x_t, t = batch["x"], batch["t"]
        gap = TIMESTEPS // self.intervals
        with torch.no_grad():
            earlier = ddim_step(x_t, teachers[0].output, t, t - gap)
            goal = consistency_function(self.target, earlier, t - gap)
        return {"consistency": distance(boundary_map(x_t, student.output, t), goal, self.distance)}

    @torch.no_grad()
    def after_step(self, student: nn.Module) -> None:
        for slow, fast in zip(self.target.parameters(), student.parameters(), strict=True):
            slow.lerp_(fast, 1 - self.ema)

    def train_steps(self) -> int:
        return self.iterations

    def trained(self, student: nn.Module) -> nn.Module:
        return Sampler(self.target, "consistency", self.task.info["steps"], grid=self.intervals)
