"""Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge
Transfer" (CVPR 2019, arXiv:1904.05835)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import regressor, resize, shared_maps


class VID(Method):
    """Cross-entropy plus the negative log-likelihood of teacher maps under a Gaussian q(t | s).

    Maximising a variational lower bound on the mutual information between teacher and
    student features: the mean μ(s) is a learned three-layer 1×1-conv network of the student
    map (hidden width = teacher channels, as in the paper's CIFAR setup), the variance a
    learned per-channel σ² = softplus(α_c) + ε, initialised to ``init_var``. Used on every
    spatial stage both models name alike (VID-I); a student map of another size is resized
    to the teacher's. Weight 1, initial variance 5 and ε = 1e-5 as RepDistiller/mdistiller.
    """

    name = "vid"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"weight": 1.0, "init_var": 5.0, "eps": 1e-5}
    search_space = {"weight": Range(0.1, 10.0, log=True)}
    """A decade either side of RepDistiller/mdistiller's weight 1; init_var and eps are numerics, kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")
        if params["eps"] <= 0:
            raise ValueError(f"eps must be positive, got {params['eps']}")
        if params["init_var"] <= params["eps"]:
            raise ValueError(f"init_var must exceed eps, got {params['init_var']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        self.stages = shared_maps(student_out, teacher_out)
        self.mean = nn.ModuleDict()
        self.raw_variance = nn.ParameterDict()
        softplus_inverse = math.log(math.expm1(self.init_var - self.eps))
        for name in self.stages:
            channels = teacher_out.features[name].shape[1]
            self.mean[name] = regressor(student_out.features[name], channels, hidden=channels)
            self.raw_variance[name] = nn.Parameter(torch.full((channels,), softplus_inverse))

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        nll = torch.zeros(())
        for name in self.stages:
            target = teacher.features[name]
            mean = self.mean[name](resize(student.features[name], target.shape[-2:]))
            variance = (F.softplus(self.raw_variance[name]) + self.eps).view(1, -1, 1, 1)
            nll = nll + (0.5 * ((mean - target).pow(2) / variance + variance.log())).mean()
        return {"task": self.task.loss(student.output, batch), "vid": self.weight * nll}
