"""Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer" (ICLR 2017, arXiv:1612.03928)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import common_size, shared_maps


def attention(maps: torch.Tensor, p: float) -> torch.Tensor:
    """The L2-normalised spatial attention map: channel mean of |activation|^p, flattened."""
    return F.normalize(maps.abs().pow(p).mean(1).flatten(1), dim=1)


class AT(Method):
    """Cross-entropy plus β · Σ_stages mean((Q_s − Q_t)²) over normalised attention maps Q.

    As the authors' code (szagoruyko/attention-transfer ``cifar.py``: ``at_loss`` is the mean
    squared difference of the two normalised maps, the loss adds ``opt.beta * sum(...)`` over
    the groups) and mdistiller's ``mdistiller/distillers/AT.py`` (``at_loss``, times
    ``CFG.AT.LOSS.FEAT_WEIGHT`` = 1000 in ``mdistiller/engine/cfg.py``), RepDistiller's
    ``distiller_zoo/AT.py`` alike: β multiplies the sum itself (the paper writes β/2 over
    a norm; the released code does not halve). Every spatial stage both models expose under
    the same name is used (found in ``setup``). Where a stage's sizes differ, the larger
    *feature map* is average-pooled to the smaller's size before its attention is taken, as
    mdistiller and RepDistiller do — whichever model's map is the smaller. β = 1000, p = 2.
    """

    name = "at"
    kinds = ("classification", "dense")
    scheme = "offline"
    needs = "features"
    defaults = {"beta": 1000.0, "p": 2.0}
    search_space = {"beta": Range(100.0, 10000.0, log=True)}
    """A decade either side of the authors' beta = 1000; p = 2 is the paper's attention mapping, kept."""

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
            guided, target = common_size(student.features[name], teacher.features[name])
            difference = attention(guided, self.p) - attention(target, self.p)
            transfer = transfer + difference.pow(2).mean()
        return {"task": self.task.loss(student.output, batch), "at": self.beta * transfer}
