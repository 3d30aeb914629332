"""Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network" (arXiv:1503.02531),
section 5: a generalist and specialists for the classes it confuses, combined, then distilled."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import (
    Batch,
    ClassificationTask,
    IncompatibleCombination,
    Method,
    ModelOutput,
    ModelSpec,
    Task,
    TrainContext,
    UserError,
    call_model,
    check_soft_target_params,
    run_training,
)
from kdbench_methods.kd import KD
from kdbench_methods.stages import frozen, train_stage

Expert = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""A specialist's log-probabilities [B, |S| + 1] (its subset's classes, then the dustbin), its subset S
and the classes in its dustbin."""


def confusable_classes(covariance: torch.Tensor, clusters: int) -> list[list[int]]:
    """The groups of classes a generalist predicts together, one specialist each (paper section 5.3).

    ``covariance``: of its predicted probabilities [K, K]; two classes whose probabilities rise on the
    same inputs covary more than two it tells apart. The classes are split into ``clusters`` groups by
    average-linkage agglomerative clustering, a pair's distance being the largest covariance between
    two classes minus theirs. The paper ran K-means on the covariance's columns, over 15,000 classes;
    over ten, each column differs from the others mostly by its own class's variance on the diagonal,
    and K-means then groups classes by how confidently they are predicted, not by confusion (on
    Fashion-MNIST it lumped seven of the ten classes together, where this finds the tops and the
    shoes). A group of one class has nothing to tell apart and a group of every class leaves no
    dustbin: neither gets a specialist. Groups are sorted, each by its classes.
    """
    from sklearn.cluster import AgglomerativeClustering  # scikit-learn loads in seconds: only when clusters are sought

    covariance = covariance.double()
    between = ~torch.eye(len(covariance), dtype=torch.bool)
    distance = torch.where(between, covariance[between].max() - covariance, 0.0)
    assignment = AgglomerativeClustering(clusters, metric="precomputed", linkage="average").fit_predict(
        distance.numpy())
    groups = [[int(c) for c in (assignment == k).nonzero()[0]] for k in range(clusters)]
    return sorted(group for group in groups if 1 < len(group) < len(assignment))


def with_dustbin(logits: torch.Tensor, subset: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Full-class logits [..., K] read as a specialist's: the subset's logits and one dustbin logit, the
    logsumexp of the rest's, so that the softmax gives the dustbin exactly their summed probability."""
    return torch.cat([logits[..., subset], logits[..., rest].logsumexp(-1, keepdim=True)], dim=-1)


class Specialist(nn.Module):
    """A network over every class whose output is re-read as a specialist's (``with_dustbin``).

    The paper's specialist has a small softmax of its own; re-reading the generalist's head keeps
    the copied weights meaningful from the first step. ``offset`` is added to the specialist's
    logits: zero while training, then the correction for its oversampled subset (``dustbin_offset``).
    """

    def __init__(self, network: nn.Module, subset: list[int], classes: int) -> None:
        super().__init__()
        self.network = network
        member = torch.zeros(classes, dtype=torch.bool)
        member[subset] = True
        self.register_buffer("subset", member.nonzero().flatten())
        self.register_buffer("rest", (~member).nonzero().flatten())
        labels = torch.full((classes,), len(subset))
        labels[self.subset] = torch.arange(len(subset))
        self.register_buffer("labels", labels)
        """Each class's label for the specialist: its place in the subset, or the dustbin's (the last)."""
        self.register_buffer("offset", torch.zeros(len(subset) + 1))

    def forward(self, *inputs: Any) -> ModelOutput:
        out = call_model(self.network, inputs if len(inputs) > 1 else inputs[0])
        return ModelOutput(with_dustbin(out.output, self.subset, self.rest) + self.offset, out.features)


def dustbin_offset(share: float) -> float:
    """The dustbin's logit correction for a subset that makes up ``share`` of the training data but
    half of each specialist's training loss: the log of the factor by which the subset is
    oversampled relative to the rest, (1 − share) / share, as in the paper's section 5.2."""
    return math.log((1 - share) / share)


def relabelled(task: ClassificationTask, labels: torch.Tensor) -> ClassificationTask:
    """The task as a specialist sees it: the same inputs and splits, each label mapped by ``labels``
    (a copy, so its validation metrics — and the best-val checkpoint — are the specialist's own)."""
    view = copy.copy(task)
    view.splits = {name: (inputs, labels[targets]) for name, (inputs, targets) in task.splits.items()}
    view.info = {**task.info, "num_classes": int(labels.max()) + 1}
    return view


def kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) of each row of log-distributions."""
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)


def ensemble_objective(log_q: torch.Tensor, general: torch.Tensor, experts: list[Expert],
                       active: torch.Tensor) -> torch.Tensor:
    """Each row's KL(p_g ‖ q) + Σ_{m active} KL(p_m ‖ q_m), q_m being q with m's dustbin (paper eq. 5).

    ``general``: the generalist's log-probabilities [B, K]; ``active``: [B, M], which specialists
    count for each row.
    """
    value = kl_rows(general, log_q)
    for (expert, subset, rest), on in zip(experts, active.T, strict=True):
        value = value + on * kl_rows(expert, with_dustbin(log_q, subset, rest))
    return value


def combine(general: torch.Tensor, experts: list[Expert], active: torch.Tensor, steps: int) -> torch.Tensor:
    """The log-distribution q minimising ``ensemble_objective``, by gradient descent on its logits z.

    Descent starts from the generalist's own distribution, the minimum of a row without an active
    specialist, and such a row is answered with it as it is (not as rounding leaves it). Each row's
    objective is divided by its number of terms, which leaves its minimum where it is and bounds its
    curvature in z by 1/2 (a softmax
    cross-entropy's Hessian diag(q) − qqᵀ has no eigenvalue above 1/2; the dustbin terms subtract
    one such matrix), so a step of 2 is the safe 1/L for every row. The gradient is written out: in z
    it is q minus the mean of the terms' targets, p_g and, for each active specialist, its
    probabilities on its subset and its dustbin's probability spread over the rest in q's proportions.
    """
    z = general.clone()
    terms = 1 + active.sum(1, keepdim=True)
    for _ in range(steps):
        log_q = z.log_softmax(-1)
        target = general.exp()
        for (expert, subset, rest), on in zip(experts, active.T.unsqueeze(-1), strict=True):
            spread = torch.zeros_like(z)
            spread[:, subset] = expert[:, :-1].exp()
            spread[:, rest] = (expert[:, -1:] + log_q[:, rest] - log_q[:, rest].logsumexp(-1, keepdim=True)).exp()
            target = target + on * spread
        z = z - 2 * (log_q.exp() - target / terms)
    return torch.where(active.any(-1, keepdim=True), z.log_softmax(-1), general)


class SpecialistEnsemble(nn.Module):
    """The generalist and its specialists as one network (paper section 5.4); its output is log q.

    For each input: the generalist's ``top`` most probable classes; the specialists whose subset holds
    one of them are active; q is the distribution closest to all of them (``combine``), solved for
    the whole batch at once.
    """

    def __init__(self, generalist: nn.Module, specialists: list[Specialist], top: int, steps: int) -> None:
        super().__init__()
        self.generalist = generalist
        self.specialists = nn.ModuleList(specialists)
        self.top = top
        self.steps = steps

    def forward(self, *inputs: Any) -> ModelOutput:
        inputs = inputs if len(inputs) > 1 else inputs[0]
        logits = call_model(self.generalist, inputs).output
        with torch.autocast(logits.device.type, enabled=False):  # the solve in fp32, whatever the recipe's precision
            general = logits.float().log_softmax(-1)
            if not self.specialists:
                return ModelOutput(general, {})
            top = general.topk(self.top, dim=-1).indices
            active = torch.stack([torch.isin(top, s.subset).any(-1) for s in self.specialists], dim=1)
            experts = [(call_model(s, inputs).output.float().log_softmax(-1), s.subset, s.rest)
                       for s in self.specialists]
            return ModelOutput(combine(general, experts, active, self.steps), {})


class Specialists(Method):
    """KD from an ensemble of the teacher (the generalist) and specialists for the classes it confuses.

    1. Clusters: ``confusable_classes``, ``clusters`` groups from the covariance of the generalist's
       predicted probabilities on the validation split (never the test split).
    2. One specialist per cluster: a copy of the generalist, its output re-read as the cluster's
       classes plus a dustbin for every other class (``Specialist``), trained by cross-entropy on
       those labels for ``specialist_epochs`` epochs with the run's recipe, on the training split
       the generalist learnt from (a recipe's ``train_examples`` limits the student alone). The
       paper draws half of each specialist's examples from its subset and half from the rest; here
       every batch is kept whole and its subset examples and its other examples each carry half of
       its loss — the same expected gradient, with no second data set to draw. The dustbin's logit
       is then corrected for the oversampling (``dustbin_offset``). Each specialist's curves are
       logged as ``specialist{k}_…`` (its validation metrics on its own labels).
    3. The ensemble (``SpecialistEnsemble``): top-``top_n`` classes, active specialists, and q by
       ``solver_steps`` gradient steps on its logits.
    4. The student learns from the ensemble's q by Hinton KD (T, α), through the engine.

    The paper takes n = 1. Four clusters are this plugin's choice for a ten-class task (on
    Fashion-MNIST they give the tops and the shoes; five drop the dress from the tops; the paper had
    61 specialists for 15,000 classes), and 50 solver steps the "few dozen" that bring q within a
    small gradient of its minimum. The
    paper gives no distillation temperature for the ensemble (it stops at the ensemble's accuracy),
    so T and α are kd's, and a suite comparing kd with specialists changes only the teacher. The
    paper's specialists trained for days where the generalist took weeks: two epochs keep CPU runs
    affordable. ``samples`` shows the clusters and the ensemble's validation
    accuracy beside the generalist's.
    """

    name = "specialists"
    kinds = ("classification",)
    scheme = "offline"
    needs = "model"
    defaults = {"clusters": 4, "top_n": 1, "solver_steps": 50, "specialist_epochs": 2, **KD.defaults}
    search_space = KD.search_space
    """kd's: the clusters and the specialists' budget are the scheme's size, not a knob to tune."""

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        super().check(task, teachers, student)
        if not isinstance(task, ClassificationTask):
            raise IncompatibleCombination("specialists relabels the task's splits for each specialist, which "
                                          "only a ClassificationTask exposes")
        if not task.has_split("val"):
            raise IncompatibleCombination("specialists finds its clusters on the validation split, and the task "
                                          "has none (the test split is never used for it)")

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        minimum = {"clusters": 2, "top_n": 1, "solver_steps": 1, "specialist_epochs": 1}
        for key, low in minimum.items():
            if not isinstance(params[key], int) or params[key] < low:
                raise ValueError(f"{key} must be an integer of at least {low}, got {params[key]!r}")
        check_soft_target_params(params)

    def fit(self, context: TrainContext) -> nn.Module:
        task, generalist = context.task, self.teachers[0].model
        classes = task.info["num_classes"]
        if max(self.clusters, self.top_n) > classes:
            raise UserError(f"specialists: clusters ({self.clusters}) and top_n ({self.top_n}) must not exceed the "
                            f"task's {classes} classes")
        probabilities = task.logits(generalist, "val", "teacher").softmax(-1)
        self.subsets = confusable_classes(torch.cov(probabilities.T), self.clusters)
        specialists = [self._specialist(context, generalist, subset, k) for k, subset in enumerate(self.subsets, 1)]
        ensemble = SpecialistEnsemble(generalist, specialists, self.top_n, self.solver_steps)
        self.val_accuracy = {name: task.evaluate(model, "val", "teacher")["accuracy"]
                             for name, model in (("generalist", generalist), ("ensemble", ensemble))}
        return train_stage(context, context.model, frozen(context, ensemble), None, main=True, T=self.T,
                           alpha=self.alpha)

    def _specialist(self, context: TrainContext, generalist: nn.Module, subset: list[int], k: int) -> Specialist:
        """Specialist ``k``: the generalist's weights, trained on ``subset`` and its dustbin (step 2)."""
        task = context.task
        specialist = Specialist(copy.deepcopy(generalist).requires_grad_(True), subset, task.info["num_classes"])
        view = relabelled(task, specialist.labels)
        specialist.to(context.device)
        dustbin = len(subset)

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            output = call_model(specialist, view.model_input(batch, "teacher")).output.float()
            losses = F.cross_entropy(output, batch["y"], reduction="none")
            inside = batch["y"] < dustbin
            halves = [losses[part].mean() for part in (inside, ~inside) if part.any()]
            return {"specialist": sum(halves) / len(halves)}

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            context.log({f"specialist{k}_{key}": value for key, value in metrics.items()}, epoch)

        recipe = context.recipe.updated({"epochs": self.specialist_epochs, "train_examples": None})
        run_training(replace(context, task=view, model=specialist, role="teacher", recipe=recipe, method=None,
                             teachers=(), on_epoch=on_epoch), step)
        share = (view.splits["train"][1] < dustbin).double().mean().item()
        specialist.offset[-1] = dustbin_offset(share)
        return specialist

    def samples(self) -> dict[str, str]:
        names = self.task.info.get("class_names")

        def named(c: int) -> str:
            return names[c] if names is not None else str(c)

        lines = [f"{self.clusters} clusters of the covariance of the generalist's validation predictions:"]
        lines += [f"specialist {k}: {', '.join(named(c) for c in subset)}" for k, subset in enumerate(self.subsets, 1)]
        if not self.subsets:
            lines.append("no cluster of two or more classes: the ensemble is the generalist")
        lines.append(f"validation accuracy: generalist {self.val_accuracy['generalist']:.4f}, "
                     f"ensemble {self.val_accuracy['ensemble']:.4f} (top {self.top_n}, {self.solver_steps} steps)")
        return {"clusters.txt": "\n".join(lines) + "\n"}
