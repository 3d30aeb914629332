"""Tian, Krishnan & Isola, "Contrastive Representation Distillation" (ICLR 2020,
arXiv:1910.10699)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Cross-entropy of picking each anchor's positive among the shared negatives (unit vectors)."""
    logits = torch.cat([(anchors * positives).sum(1, keepdim=True), anchors @ negatives.T], dim=1)
    return F.cross_entropy(logits / temperature, torch.zeros(len(anchors), dtype=torch.long))


class CRD(Method):
    """Cross-entropy plus a contrastive loss between student and teacher embeddings.

    Both embeddings are projected (learned linear heads, created in ``setup``) to ``dim``
    and L2-normalised. A memory bank per side holds one vector per training sample, keyed
    by ``batch["index"]`` and updated with momentum; a student embedding must pick its own
    sample's teacher vector among ``negatives`` other bank vectors, and a teacher embedding
    its sample's student vector. This is the softmax (InfoNCE) form found in the CRD/CMC
    code rather than the paper's NCE with a normalising constant; the negatives are drawn
    uniformly (the code's "relax" mode) and shared by the batch, so one matrix product
    scores them all on a CPU. Paper defaults: dim 128, 16384 negatives (fewer when the
    training split is smaller), temperature 0.07, momentum 0.5, weight 0.8.
    """

    name = "crd"
    kinds = ("classification",)
    scheme = "offline"
    needs = "features"
    defaults = {"student_feature": "embedding", "teacher_feature": "embedding", "dim": 128,
                "negatives": 16384, "nce_t": 0.07, "momentum": 0.5, "weight": 0.8}
    search_space = {"weight": Range(0.08, 8.0, log=True), "nce_t": Range(0.02, 0.5, log=True)}
    """A decade either side of the paper's weight 0.8; the NCE temperature from 0.02 to 0.5 around its 0.07."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        for key in ("dim", "negatives"):
            if params[key] < 1:
                raise ValueError(f"{key} must be at least 1, got {params[key]}")
        if params["nce_t"] <= 0:
            raise ValueError(f"nce_t must be positive, got {params['nce_t']}")
        if not 0 <= params["momentum"] < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {params['momentum']}")
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")

    def setup(self, student_out: ModelOutput, teachers_out: list[ModelOutput]) -> None:
        teacher_out = teachers_out[0]
        s, t = feature_pair(student_out, teacher_out, self.student_feature, self.teacher_feature)
        self.embed_student = nn.Linear(s.flatten(1).shape[1], self.dim)
        self.embed_teacher = nn.Linear(t.flatten(1).shape[1], self.dim)
        size = self.task.num_train
        self.register_buffer("bank_student", F.normalize(torch.randn(size, self.dim), dim=1))
        self.register_buffer("bank_teacher", F.normalize(torch.randn(size, self.dim), dim=1))

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        v_s = F.normalize(self.embed_student(s.flatten(1)), dim=1)
        v_t = F.normalize(self.embed_teacher(t.flatten(1)), dim=1)
        index = batch["index"]
        size = len(self.bank_student)
        negatives = torch.randint(0, size, (min(self.negatives, size - 1),))
        teacher_bank, student_bank = self.bank_teacher, self.bank_student
        student_anchored = info_nce(v_s, teacher_bank[index], teacher_bank[negatives], self.nce_t)
        teacher_anchored = info_nce(v_t, student_bank[index], student_bank[negatives], self.nce_t)
        with torch.no_grad():
            for bank, fresh in ((self.bank_student, v_s), (self.bank_teacher, v_t)):
                mixed = self.momentum * bank[index] + (1 - self.momentum) * fresh
                bank[index] = F.normalize(mixed, dim=1)
        contrast = self.weight * (student_anchored + teacher_anchored)
        return {"task": self.task.loss(student.output, batch), "crd": contrast}
