"""The generic training loop every role and method shares.

One loop for teachers, student-only baselines and distillation: the method's loss
terms are summed and each is logged; a non-finite loss stops the run as diverged.
Checkpoints are chosen by the suite's rule — the final epoch, or the best epoch on
the validation split — never on the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdbench.method import Method
from kdbench.model import ModelOutput
from kdbench.model_call import call_model
from kdbench.recipe import Recipe
from kdbench.task import Batch, Task
from kdbench.teacher_outputs import TeacherOutputs

EpochCallback = Callable[[int, dict[str, float]], None]
StepLosses = Callable[[Batch], dict[str, torch.Tensor]]
"""One batch's named loss terms, to be summed and minimised."""


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainContext:
    """Everything a training loop needs; a method that owns its loop gets the same."""

    task: Task
    model: nn.Module
    role: str
    """The input role the trained model reads: 'teacher' when training a teacher."""
    recipe: Recipe
    seed: int
    method: Method | None = None
    teacher: TeacherOutputs | list[TeacherOutputs] | None = None
    """The frozen teacher(s); a list when the method takes several."""
    checkpoint: str = "final"
    on_epoch: EpochCallback = field(default=lambda epoch, metrics: None)
    on_batch: Callable[[], None] = field(default=lambda: None)
    build_model: Callable[[str | None], nn.Module] | None = None
    """Build a fresh model for the task: the student's architecture (``None``) or a named
    teacher/student spec — for methods that train peers, generations or assistants."""
    log: Callable[[dict[str, float], int | None], None] = field(default=lambda metrics, step: None)
    """Log extra metrics to the run (e.g. one series per born-again generation)."""

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def teacher_outputs(self, batch: Batch) -> ModelOutput | list[ModelOutput] | None:
        """The teacher's outputs on ``batch`` (a list for several teachers)."""
        if isinstance(self.teacher, list):
            return [teacher.outputs(batch) for teacher in self.teacher]
        return self.teacher.outputs(batch) if self.teacher is not None else None


def make_optimizer(parameters: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def train(context: TrainContext) -> nn.Module:
    """Train ``context.model`` (with the method's extras) and return it at the chosen checkpoint."""
    method = context.method
    if method is not None:
        owned = method.fit(context)
        if owned is not None:
            return owned
    task, model = context.task, context.model

    def step_losses(batch: Batch) -> dict[str, torch.Tensor]:
        student = call_model(model, task.model_input(batch, context.role))
        if method is None:
            return {"task": task.loss(student.output, batch)}
        return method.loss(batch, student, context.teacher_outputs(batch))

    return run_epochs(context, step_losses)


def run_epochs(context: TrainContext, step_losses: StepLosses) -> nn.Module:
    """The epoch loop, given how one batch's named loss terms are computed.

    Shared by the generic trainer and by methods that own their loop (peers trained
    together call it with a step that runs every peer), so the recipe, seeding,
    divergence check, logging and checkpoint rule are the same for all. It optimises
    ``context.model`` and the method's own parameters (peers included, when the method
    keeps them as submodules) and returns ``context.model`` at the chosen checkpoint.
    """
    task, model, recipe, method = context.task, context.model, context.recipe, context.method
    generator = context.generator()
    torch.manual_seed(context.seed)
    if method is not None:
        _setup_method(context)
        method.epochs = recipe.epochs
    parameters = list(model.parameters()) + (list(method.parameters()) if method is not None else [])
    optimizer = make_optimizer([p for p in parameters if p.requires_grad], recipe)
    schedule = make_schedule(optimizer, recipe)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    has_val = task.has_split("val")
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        if method is not None:
            method.train()
            method.epoch = epoch
        sums: dict[str, torch.Tensor] = {}
        batches = 0
        for batch in task.batches("train", recipe, generator):
            terms = step_losses(batch)
            total = sum(terms.values())
            if not torch.isfinite(total):
                values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                raise DivergedError(f"non-finite loss at epoch {epoch}: {values}")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.detach()
            batches += 1
            context.on_batch()
        schedule.step()
        metrics = {"train_loss": sum(float(v) for v in sums.values()) / max(batches, 1)}
        if len(sums) > 1:
            metrics.update({f"train_loss_{k}": float(v) / batches for k, v in sums.items()})
        if has_val:
            val = task.evaluate(model, "val", context.role)
            metrics.update({f"val_{k}": v for k, v in val.items()})
            score = val[task.primary_metric] * (1 if task.higher_is_better else -1)
            if context.checkpoint == "best-val" and (best is None or score > best[0]):
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
        context.on_epoch(epoch, metrics)
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model


def _setup_method(context: TrainContext) -> None:
    """Let the method size its extras from one batch's outputs."""
    assert context.method is not None
    batch = next(iter(context.task.batches("train", None, None)))
    with torch.no_grad():
        was_training = context.model.training
        context.model.eval()
        student = call_model(context.model, context.task.model_input(batch, context.role))
        context.model.train(was_training)
    context.method.setup(student, context.teacher_outputs(batch))
