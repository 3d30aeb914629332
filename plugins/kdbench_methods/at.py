"""Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer" (ICLR 2017, arXiv:1612.03928)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import resize, shared_maps


def attention(maps: torch.Tensor, p: float, size: tuple[int, ...]) -> torch.Tensor:
    """The L2-normalised spatial attention map: channel mean of |activation|^p, at ``size``."""
    return F.normalize(resize(maps.abs().pow(p).mean(1), size).flatten(1), dim=1)


class AT(Method):
    """Cross-entropy plus β/2 · Σ_stages mean((Q_s − Q_t)²) over normalised attention maps Q.

    Every spatial stage both models expose under the same name is used (found in ``setup``);
    a student map of another size is resized to the teacher's. β = 1000 and p = 2 are the
    paper's; the squared-difference mean follows the authors' code.
    """

    name = "at"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"beta": 1000.0, "p": 2.0}
    search_space = {"beta": Range(100.0, 10000.0, log=True)}
    """A decade either side of the paper's beta = 1000; p = 2 is the paper's attention mapping, kept."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["beta"] < 0:
            raise ValueError(f"beta must not be negative, got {params['beta']}")
        if params["p"] <= 0:
            raise ValueError(f"p must be positive, got {params['p']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        self.stages = shared_maps(student_out, teacher_out)

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        transfer = torch.zeros(())
        for name in self.stages:
            target = teacher.features[name]
            size = target.shape[-2:]
            guided = attention(student.features[name], self.p, size)
            difference = guided - attention(target, self.p, size)
            transfer = transfer + difference.pow(2).mean()
        return {"task": self.task.loss(student.output, batch), "at": self.beta / 2 * transfer}
