"""The denoising task kind: training batches for a diffusion model, and sample quality at N steps.

Training batches are already noised: each carries a clean sample ``x0``, a timestep ``t``
drawn uniformly from the 1024 training timesteps, x_t (as ``x``) and the v-prediction
target, drawn from the run's generator, so a teacher trains through the generic loop
(``model_input`` is (x_t, t), ``loss`` the mean squared v error) and its cache works as for
every teacher. Noise differs every epoch, so teacher outputs are never cached.

Evaluation samples the run's model from a fixed noise seed — the same noise for every model
and step count — at each step count the model is meant for, and reports per N the Fréchet
distance and KID against the test split on the task's frozen feature network, the task's own
sample statistics (classifier confidence, or the exact likelihood on the toy) and the
wall time per sample (``sample_ms``, batched, on the run's threads). The primary metric
``fd`` is the one at the task's ``primary_steps`` (the teacher's at its own step count).
There is no validation split: checkpoints are the final ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Recipe, Task, UserError
from kdbench_diffusion.frechet import SampleQuality
from kdbench_diffusion.grids import grid_png
from kdbench_diffusion.sampling import as_sampler
from kdbench_diffusion.schedule import TIMESTEPS, training_scheduler

SAMPLE_SEED = 1234
"""The noise every evaluated sampler starts from."""
EVAL_BATCH = 250


class DenoisingTask(Task):
    kind = "denoising"
    primary_metric = "fd"
    higher_is_better = False

    def __init__(self, train: torch.Tensor, test: torch.Tensor, quality: SampleQuality,
                 describe: Callable[[torch.Tensor], dict[str, float]], recipes: dict[str, Recipe], *,
                 samples: int, steps: Sequence[int], primary_steps: int, teacher_steps: int,
                 fingerprint: dict[str, float] | None = None) -> None:
        """``train``/``test``: clean samples in model space; ``quality`` scores samples against ``test``;
        ``describe`` adds task-specific statistics of a sample set; ``fingerprint``: metrics that
        identify the yardstick (the feature network's hash), logged with every evaluation."""
        super().__init__()
        self.drawn: dict[str, bytes] = {}
        """Sample grids of the evaluations since the last ``pictures`` call (a run's, stages included)."""
        if samples < 2:
            raise UserError(f"denoising task: samples must be at least 2, got {samples}")
        for name, count in [("steps", n) for n in steps] + [("primary_steps", primary_steps),
                                                            ("teacher_steps", teacher_steps)]:
            if count < 1 or TIMESTEPS % count:
                raise UserError(f"denoising task: {name} must be powers of two up to {TIMESTEPS}, got {count}")
        if max(steps) >= teacher_steps:
            raise UserError(f"denoising task: steps {list(steps)} must all be fewer than teacher_steps {teacher_steps}")
        if primary_steps not in steps:
            raise UserError(f"denoising task: primary_steps {primary_steps} is not one of steps {steps}")
        self.train, self.test = train, test
        self.quality, self.describe = quality, describe
        self.recipes = recipes
        self.samples = samples
        self.fingerprint = fingerprint or {}
        self.info = {"input_shape": tuple(train.shape[1:]), "steps": tuple(sorted(steps)),
                     "primary_steps": primary_steps, "teacher_steps": teacher_steps}
        self.scheduler = training_scheduler()

    @property
    def num_train(self) -> int:
        return len(self.train)

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def has_split(self, split: str) -> bool:
        return split in ("train", "test")

    def deterministic(self, recipe: Recipe) -> bool:
        return False  # fresh noise and timesteps every epoch

    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator | None) -> Iterator[Batch]:
        if not self.has_split(split):
            raise UserError(f"denoising task has splits 'train' and 'test', not {split!r}")
        data = self.train if split == "train" else self.test
        if split == "train" and generator is not None:
            order = torch.randperm(len(data), generator=generator)
        else:
            order, generator = torch.arange(len(data)), torch.Generator().manual_seed(0)
        size = recipe.batch_size if recipe is not None else EVAL_BATCH
        for index in order.split(size):
            x0 = data[index]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, TIMESTEPS, (len(index),), generator=generator)
            yield {"x": self.scheduler.add_noise(x0, noise, t), "t": t, "x0": x0,
                   "target": self.scheduler.get_velocity(x0, noise, t), "index": index}

    def model_input(self, batch: Batch, role: str) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["x"], batch["t"]

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.mse_loss(output, batch["target"])

    def draw(self, model: nn.Module, steps: int) -> torch.Tensor:
        """``self.samples`` samples of ``model`` at ``steps`` steps, from the fixed evaluation noise."""
        sampler = as_sampler(model, self.info["teacher_steps"])
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        shape = self.info["input_shape"]
        sizes = [EVAL_BATCH] * (self.samples // EVAL_BATCH) + [self.samples % EVAL_BATCH] * bool(
            self.samples % EVAL_BATCH)
        return torch.cat([sampler.sample(torch.randn((n, *shape), generator=generator), steps, generator)
                          for n in sizes])

    def pictures(self, model: nn.Module, role: str) -> dict[str, bytes]:
        drawn, self.drawn = self.drawn, {}
        return drawn

    def evaluate(self, model: nn.Module, split: str, role: str,
                 reference: nn.Module | None = None) -> dict[str, float]:
        if split != "test":
            raise UserError(f"denoising task evaluates on 'test' only, not {split!r}")
        sampler = as_sampler(model, self.info["teacher_steps"])
        was_training = sampler.training
        sampler.eval()
        metrics = dict(self.fingerprint)
        for steps in sampler.steps:
            started = time.perf_counter()
            samples = self.draw(sampler, steps)
            elapsed = time.perf_counter() - started
            values = {**self.quality(samples), **self.describe(samples), "sample_ms": 1000 * elapsed / len(samples)}
            metrics.update({f"{key}_n{steps}": value for key, value in values.items()})
            grid = grid_png(samples)
            if grid is not None:
                self.drawn[f"samples-n{steps}.png"] = grid
        primary = self.info["primary_steps"] if self.info["primary_steps"] in sampler.steps else max(sampler.steps)
        metrics.update({"fd": metrics[f"fd_n{primary}"], "kid": metrics[f"kid_n{primary}"], "steps": primary})
        sampler.train(was_training)
        return metrics
