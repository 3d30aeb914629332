"""The denoising kind's training view for methods that train at timesteps of their own.

The task's training batches are noised at timesteps drawn uniformly from all 1024, which
is what a teacher learns from. Consistency distillation trains on a grid of its own (the
times its sampler visits); its view redraws each batch's timesteps with the method's
``timesteps`` and noises the clean samples there, from the run's stream. The batch keeps
no ``index``: its inputs are not the task's, so no cached output may answer it.
"""

from __future__ import annotations

import torch

from kdbench import Batch, TrainingView
from kdbench_diffusion.schedule import alpha_sigma


class TimestepView(TrainingView):
    def batch(self, batch: Batch) -> Batch:
        x0 = batch["x0"]
        t = self.context.method.timesteps(len(x0), self.generator)
        alpha, sigma = alpha_sigma(t, x0)
        noise = torch.randn(x0.shape, generator=self.generator)
        return {"x0": x0, "t": t, "x": alpha * x0 + sigma * noise, "target": alpha * noise - sigma * x0}
