"""Tian, Krishnan & Isola, "Contrastive Representation Distillation" (ICLR 2020,
arXiv:1910.10699)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, ClassificationTask, IncompatibleCombination, Method, ModelOutput, Range
from kdbench_methods.feature_adapters import feature_pair

EPS = 1e-7
"""The reference code's guard in the NCE denominators."""


def training_labels(task: Any) -> torch.Tensor:
    """The label of every training sample, row i being ``batch["index"]`` i.

    The task contract has no accessor for them; a ``kdbench.ClassificationTask`` (every
    built-in classification task, node tasks included) holds them as ``splits["train"][1]``.
    """
    if not isinstance(task, ClassificationTask):
        raise IncompatibleCombination("crd draws its negatives from other classes and needs the training "
                                      "labels, which only a ClassificationTask exposes")
    return task.splits["train"][1]


def nce_loss(scores: torch.Tensor, normaliser: float, size: int) -> torch.Tensor:
    """CRD's NCE objective (paper Eq. 18) on exp-scores [B, 1 + K], the positive first.

    P = score / Z; with K noise samples from the uniform noise 1/N, a pair is real with
    probability P / (P + K/N). The loss is −(Σ log D(pos) + Σ log (1 − D(neg))) / B.
    """
    noise = (scores.shape[1] - 1) / size
    p = scores / normaliser
    real = torch.log(p[:, 0] / (p[:, 0] + noise + EPS))
    fake = torch.log(noise / (p[:, 1:] + noise + EPS))
    return -(real.sum() + fake.sum()) / len(scores)


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Cross-entropy of picking each anchor's positive among the shared negatives (unit vectors)."""
    logits = torch.cat([(anchors * positives).sum(1, keepdim=True), anchors @ negatives.T], dim=1)
    return F.cross_entropy(logits / temperature, torch.zeros(len(anchors), dtype=torch.long))


class CRD(Method):
    """Cross-entropy plus CRD's NCE contrast between student and teacher embeddings.

    As published and as RepDistiller runs it (``crd/criterion.py``: ``CRDLoss``,
    ``ContrastLoss``; ``crd/memory.py``: ``ContrastMemory``; ``dataset/cifar100.py``:
    ``CIFAR100InstanceSample``). Both embeddings are projected (learned linear heads, created in
    ``setup``) to ``dim`` and L2-normalised. A memory bank per side holds one vector per training
    sample (drawn uniform in ±1/√(dim/3) at first, as ``ContrastMemory``), keyed by
    ``batch["index"]`` and updated with momentum then renormalised. Each anchor — a student
    embedding against the teacher bank, a teacher embedding against the student bank — gets K =
    ``negatives`` negatives of its own, drawn uniformly from the training samples of *other*
    classes (without replacement unless there are fewer than K), as ``CIFAR100InstanceSample``
    does in both of its modes ('exact', the default, takes the sample itself as the positive,
    as here; 'relax' a random same-class sample). The score of a pair is exp(vᵀw / T) / Z, Z
    being estimated once, on the first batch, as N times the mean score, and the loss is the
    NCE of ``nce_loss``. Defaults as RepDistiller's ``train_student.py`` and
    ``scripts/run_cifar_distill.sh`` (mdistiller's ``CFG.CRD`` alike): dim 128, K = 16384,
    T = 0.07, momentum 0.5, weight 0.8. ``crd-infonce`` is the softmax variant.
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
        self.register_buffer("bank_student", self.initial_bank(size))
        self.register_buffer("bank_teacher", self.initial_bank(size))
        self.prepare_negatives()

    def initial_bank(self, size: int) -> torch.Tensor:
        bound = 1 / math.sqrt(self.dim / 3)
        return torch.rand(size, self.dim) * 2 * bound - bound

    def prepare_negatives(self) -> None:
        labels = training_labels(self.task)
        if len(labels.unique()) < 2:
            raise IncompatibleCombination("crd needs at least two classes in the training split")
        self.register_buffer("labels", labels.clone(), persistent=False)
        self.register_buffer("normaliser", torch.full((2,), -1.0))
        """Z for the student-anchored and the teacher-anchored side; negative until the first batch."""

    def draw_negatives(self, index: torch.Tensor) -> torch.Tensor:
        """[B, K] training indices, row b drawn uniformly among the samples of another class than b's:
        without replacement (the K largest of uniform random keys) unless there are fewer than K."""
        allowed = self.labels[None, :] != self.labels[index][:, None]
        few = allowed.sum(1) < self.negatives
        negatives = torch.empty(len(index), self.negatives, dtype=torch.long)
        if (~few).any():
            keys = torch.rand(allowed[~few].shape).masked_fill_(~allowed[~few], -1.0)
            negatives[~few] = keys.topk(self.negatives, dim=1, sorted=False).indices
        if few.any():
            negatives[few] = torch.multinomial(allowed[few].float(), self.negatives, replacement=True)
        return negatives

    def embed(self, student: ModelOutput, teacher: ModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = feature_pair(student, teacher, self.student_feature, self.teacher_feature)
        return (F.normalize(self.embed_student(s.flatten(1)), dim=1),
                F.normalize(self.embed_teacher(t.flatten(1)), dim=1))

    def update_banks(self, index: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor) -> None:
        """Momentum-mix the batch's rows into each bank and renormalise; a new tensor, so the
        bank a loss was scored against stays as it was for the backward pass."""
        with torch.no_grad():
            for name, fresh in (("bank_student", v_s), ("bank_teacher", v_t)):
                bank = getattr(self, name)
                mixed = self.momentum * bank[index] + (1 - self.momentum) * fresh
                setattr(self, name, bank.index_copy(0, index, F.normalize(mixed, dim=1)))

    def contrast(self, anchors: torch.Tensor, bank: torch.Tensor, candidates: torch.Tensor,
                 side: int) -> torch.Tensor:
        """NCE of each anchor against its row of ``candidates`` (its positive first) in ``bank``."""
        scores = torch.exp((anchors @ bank.T).gather(1, candidates) / self.nce_t)
        if self.normaliser[side] < 0:
            self.normaliser[side] = scores.detach().mean() * len(bank)
        return nce_loss(scores, self.normaliser[side].item(), len(bank))

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        v_s, v_t = self.embed(student, teachers[0])
        index = batch["index"]
        candidates = torch.cat([index[:, None], self.draw_negatives(index)], dim=1)
        student_anchored = self.contrast(v_s, self.bank_teacher, candidates, 0)
        teacher_anchored = self.contrast(v_t, self.bank_student, candidates, 1)
        self.update_banks(index, v_s, v_t)
        contrast = self.weight * (student_anchored + teacher_anchored)
        return {"task": self.task.loss(student.output, batch), "crd": contrast}


class CRDInfoNCE(CRD):
    """CRD's heads and memory banks with a softmax (InfoNCE) objective instead of the NCE.

    A student embedding must pick its own sample's teacher bank vector among ``negatives``
    bank vectors drawn uniformly from the whole training split (any class, the sample itself
    included) and shared by the batch, so one matrix product scores them all on a CPU; a
    teacher embedding likewise against the student bank. K is capped at N − 1, the banks start
    as random unit vectors. This is what kdbench called ``crd`` before it followed the
    published NCE form; it is not what RepDistiller runs for CRD (its ``ContrastLoss`` is the
    NCE of Eq. 18). Same defaults as ``crd``.
    """

    name = "crd-infonce"

    def initial_bank(self, size: int) -> torch.Tensor:
        return F.normalize(torch.randn(size, self.dim), dim=1)

    def prepare_negatives(self) -> None:
        """Uniform negatives need no labels."""

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        v_s, v_t = self.embed(student, teachers[0])
        index = batch["index"]
        size = len(self.bank_student)
        negatives = torch.randint(0, size, (min(self.negatives, size - 1),))
        teacher_bank, student_bank = self.bank_teacher, self.bank_student
        student_anchored = info_nce(v_s, teacher_bank[index], teacher_bank[negatives], self.nce_t)
        teacher_anchored = info_nce(v_t, student_bank[index], student_bank[negatives], self.nce_t)
        self.update_banks(index, v_s, v_t)
        contrast = self.weight * (student_anchored + teacher_anchored)
        return {"task": self.task.loss(student.output, batch), "crd": contrast}
