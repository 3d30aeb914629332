"""Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models" (ICLR 2022, arXiv:2202.00512)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from kdbench import Batch, BatchStream, Method, Task, TrainContext, run_training
from kdbench_diffusion.frechet import freeze
from kdbench_diffusion.sampling import Sampler
from kdbench_diffusion.schedule import TIMESTEPS, alpha_sigma, ddim_step, grid, predict_x0

MATCH_SEED = 4321
MATCH_SAMPLES = 64


def progressive_loss(teacher: nn.Module, student: nn.Module, steps: int, x0: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """One step of the N-step student against two DDIM steps of its 2N-step teacher (the paper's Algorithm 2).

    From z_t on the student's grid the teacher steps to t − Δ/2 and then to t'' = t − Δ; the target
    x̃ = (z_t'' − (σ_t''/σ_t) z_t) / (α_t'' − (σ_t''/σ_t) α_t) is the clean sample for which one DDIM
    step from z_t lands exactly on z_t''. The student's x-prediction is regressed on it with the
    paper's truncated-SNR weight max(α²/σ², 1).
    """
    delta = TIMESTEPS // steps
    t = grid(steps)[torch.randint(0, steps, (len(x0),), generator=generator)]
    alpha, sigma = alpha_sigma(t, x0)
    z = alpha * x0 + sigma * torch.randn(x0.shape, generator=generator)
    with torch.no_grad():
        middle = ddim_step(z, teacher(z, t).output, t, t - delta // 2)
        after = ddim_step(middle, teacher(middle, t - delta // 2).output, t - delta // 2, t - delta)
        alpha_after, sigma_after = alpha_sigma(t - delta, x0)
        ratio = sigma_after / sigma
        target = (after - ratio * z) / (alpha_after - ratio * alpha)
    predicted = predict_x0(z, student(z, t).output, t)
    weight = (alpha / sigma).pow(2).clamp(min=1.0)
    return (weight * (predicted - target).pow(2)).mean()


@torch.no_grad()
def stage_gap(teacher: nn.Module, student: nn.Module, steps: int, noise: torch.Tensor) -> float:
    """Mean squared difference between the student's N-step and the teacher's 2N-step DDIM samples from ``noise``."""
    ours = Sampler(student, "ddim", (steps,)).sample(noise, steps)
    theirs = Sampler(teacher, "ddim", (2 * steps,)).sample(noise, 2 * steps)
    return float((ours - theirs).pow(2).mean())


class Progressive(Method):
    """Halve the sampling steps stage by stage, from the teacher's count down to the task's fewest (64 → 32 → … → 1).

    Stage k's student starts as a copy of its teacher (stage k − 1's student; the trained
    teacher for stage 1) and learns to match two of its teacher's DDIM steps with one, for
    ``stage_iterations`` Adam steps. Each stage logs its loss (``stage{k}_loss``), its step
    count and its gap to its teacher on fixed noise (``stage_gap``, step k); a stage whose step
    count the task reports is evaluated on the test split when it is done (``test_fd_n{N}``, …)
    and never trained again. The run's model is the student at the task's primary step count.
    """

    name = "progressive"
    kinds = ("denoising",)
    scheme = "offline"
    needs = "model"
    defaults = {"stage_iterations": 200}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not isinstance(params["stage_iterations"], int) or params["stage_iterations"] < 1:
            raise ValueError(f"stage_iterations must be an integer ≥ 1, got {params['stage_iterations']}")

    def fit(self, context: TrainContext) -> nn.Module:
        task: Task = context.task
        info = task.info
        teacher, student = self.teachers[0].model, context.model
        student.load_state_dict(teacher.state_dict())
        stream = BatchStream.for_run(context)  # one stream: each stage goes on where the last stopped
        noise = torch.randn((MATCH_SAMPLES, *info["input_shape"]), generator=torch.Generator().manual_seed(MATCH_SEED))
        steps, stage, kept = info["teacher_steps"], 0, None
        rounds: list[float] = []  # the run's train_loss curve, through every stage
        while steps > min(info["steps"]):
            steps, stage = steps // 2, stage + 1
            final = self._stage(context, stream, teacher, student, steps, stage, rounds)
            context.log({"stage_steps": steps, "stage_loss": final,
                         "stage_gap": stage_gap(teacher, student, steps, noise)}, stage)
            if steps == info["primary_steps"]:
                kept = copy.deepcopy(student)
            elif steps in info["steps"]:
                metrics = task.evaluate(Sampler(student, "ddim", (steps,)), "test", "student")
                context.log({f"test_{k}": v for k, v in metrics.items() if k.endswith(f"_n{steps}")}, None)
            teacher = freeze(copy.deepcopy(student))
        return Sampler(kept, "ddim", (info["primary_steps"],))

    def _stage(self, context: TrainContext, stream: BatchStream, teacher: nn.Module, student: nn.Module,
               steps: int, stage: int, rounds: list[float]) -> float:
        """Train the ``steps``-step student on its 2N-step teacher; return its last round's mean loss."""

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            return {"progressive": progressive_loss(teacher, student, steps, batch["x0"], stream.generator)}

        def on_round(epoch: int, metrics: dict[str, float]) -> None:
            rounds.append(metrics["train_loss"])
            context.log({f"stage{stage}_loss": metrics["train_loss"]}, epoch)
            context.on_epoch(len(rounds), metrics)

        run_training(replace(context, on_epoch=on_round), step, steps=self.stage_iterations, stream=stream)
        return rounds[-1]
