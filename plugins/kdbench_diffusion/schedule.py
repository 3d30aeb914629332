"""The noise process every model here shares, and the DDIM step that training targets are built from.

A variance-preserving diffusion on 1024 training timesteps with the cosine schedule
(``squaredcos_cap_v2``): x_t = α_t x0 + σ_t ε with α_t² = ᾱ_t. Networks predict
v = α_t ε − σ_t x0 (v-prediction, Salimans & Ho 2022): unlike ε-prediction it stays well posed
when one step must jump from pure noise to data, which step distillation asks for.

1024 rather than the usual 1000 timesteps makes every power-of-two sampler grid exact: with
diffusers' "trailing" spacing an N-step DDIM sampler visits t = 1023, 1023 − 1024/N, …, and
steps to t − 1024/N, which is always the next grid point; so a 2N-step teacher's grid holds
the N-step student's, and LCMScheduler's consistency grid lines up with both. Timestep −1
stands for clean data (ᾱ = 1), where DDIM's last step lands.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # diffusers takes seconds to import: only runs that use this plugin pay for it
    from diffusers import DDIMScheduler, DDPMScheduler, LCMScheduler

TIMESTEPS = 1024
CONFIG = {"num_train_timesteps": TIMESTEPS, "beta_schedule": "squaredcos_cap_v2",
          "prediction_type": "v_prediction", "clip_sample": False}


def training_scheduler() -> DDPMScheduler:
    """The scheduler a teacher is trained with (``add_noise``, ``get_velocity``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**CONFIG)


def ddim_scheduler(steps: int) -> DDIMScheduler:
    """Deterministic DDIM (η = 0) with ``steps`` steps from t = 1023 down to clean data."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(**CONFIG, timestep_spacing="trailing", set_alpha_to_one=True)
    scheduler.set_timesteps(steps)
    return scheduler


def lcm_scheduler(steps: int, grid: int) -> LCMScheduler:
    """Multistep consistency sampling on the ``grid``-interval schedule a consistency model was distilled on."""
    from diffusers import LCMScheduler

    scheduler = LCMScheduler(**CONFIG, original_inference_steps=grid, set_alpha_to_one=True)
    scheduler.set_timesteps(steps)
    return scheduler


@cache
def _alphas_cumprod() -> torch.Tensor:
    return training_scheduler().alphas_cumprod.clone()


def alpha_sigma(t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α_t and σ_t for each timestep in ``t`` (−1: clean data), shaped to broadcast against ``like``."""
    bar = torch.where(t >= 0, _alphas_cumprod()[t.clamp(min=0)], torch.ones(()))
    shape = (-1,) + (1,) * (like.dim() - 1)
    return bar.sqrt().view(shape), (1 - bar).sqrt().view(shape)


def predict_x0(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The clean sample implied by a v-prediction: x0 = α_t x_t − σ_t v."""
    alpha, sigma = alpha_sigma(t, x_t)
    return alpha * x_t - sigma * v


def ddim_step(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step from t to t_next, per sample (``DDIMScheduler.step`` takes one t per call).

    x0 = α_t x_t − σ_t v and ε = σ_t x_t + α_t v, then x_next = α_next x0 + σ_next ε.
    """
    alpha, sigma = alpha_sigma(t, x_t)
    alpha_next, sigma_next = alpha_sigma(t_next, x_t)
    x0 = alpha * x_t - sigma * v
    eps = sigma * x_t + alpha * v
    return alpha_next * x0 + sigma_next * eps


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LCMScheduler's consistency-model boundary scalings (c_skip, c_out) at timesteps ``t`` (clamped at 0)."""
    return _lcm().get_scalings_for_boundary_condition_discrete(t.clamp(min=0).float())


@cache
def _lcm() -> LCMScheduler:
    from diffusers import LCMScheduler

    return LCMScheduler(**CONFIG)


def grid(steps: int) -> torch.Tensor:
    """The timesteps an N-step trailing-spaced sampler visits, from 1023 down."""
    return TIMESTEPS - 1 - torch.arange(steps) * (TIMESTEPS // steps)
