"""The one training loop: teachers, baselines, distillation and every method's own stages.

Training is counted in epochs (the recipe's) or, where a method's budget is a number of
optimiser steps (step distillation counts iterations, as its papers do), in steps taken in
rounds of ``ROUND_STEPS`` at a constant learning rate. Either way each round ends like an
epoch: the mean loss terms and the validation metrics are logged, ``kdbench_epoch_end``
fires, the learning-rate schedule steps, and the checkpoint rule — the final round, or the best on the validation
split, never on the test split — picks the weights kept. A non-finite loss stops the run
as diverged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch import nn

from kdbench.device import autocast, full_precision, gradient_scaler, to_device
from kdbench.recipe import Recipe
from kdbench.task import Batch, Task
from kdbench.training.context import TrainContext
from kdbench.training.view import TrainingView

ROUND_STEPS = 50
"""Optimiser steps per logged round when training is counted in steps."""
StepLosses = Callable[[Batch], dict[str, torch.Tensor]]
"""One batch's named loss terms, to be summed and minimised."""


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class BatchStream:
    """A run's training batches, shuffled by one generator, epoch after epoch.

    A method that trains in stages passes one stream to every stage, so a stage goes on
    where the last one stopped in the data and in the random draws.
    """

    def __init__(self, task: Task, recipe: Recipe, seed: int) -> None:
        self.task = task
        self.recipe = recipe
        self.generator = torch.Generator().manual_seed(seed)
        self._endless: Iterator[Batch] | None = None

    @classmethod
    def for_run(cls, context: TrainContext) -> BatchStream:
        """A fresh stream for a run, with the global generator (initialisations, dropout) reseeded."""
        stream = cls(context.task, context.recipe, context.seed)
        torch.manual_seed(context.seed)
        return stream

    def epoch(self) -> Iterator[Batch]:
        return self.task.batches("train", self.recipe, self.generator)

    def take(self, count: int) -> Iterator[Batch]:
        """The next ``count`` batches, running on into the next epoch as needed."""
        if self._endless is None:
            self._endless = self._cycle()
        return itertools.islice(self._endless, count)

    def _cycle(self) -> Iterator[Batch]:
        while True:
            yield from self.epoch()


def train(context: TrainContext) -> nn.Module:
    """Train ``context.model`` by its method (or on the task's loss alone) and return the model to evaluate.

    A method that owns its scheme (``fit``) runs it; every other goes through the method's
    training view and the engine, for the number of epochs in the recipe or the steps the
    method asks for.
    """
    method = context.method
    if method is not None:
        owned = method.fit(context)
        if owned is not None:
            return owned
    stream = BatchStream.for_run(context)
    view = (method.view if method is not None else TrainingView)(context, stream.generator)
    if method is not None:
        if not context.fine_tuning:
            method.prepare_student(context.model)
        _setup(context, view)  # again when fine-tuning: a pruned student's features are narrower

    def step_losses(batch: Batch) -> dict[str, torch.Tensor]:
        # The forward passes run in the recipe's precision (run_training's autocast); every loss
        # term is computed on fp32 outputs, outside it.
        batch = view.batch(batch)
        student = view.student(batch)
        teachers = view.teachers(batch) if method is not None else []
        with torch.autocast(context.device.type, enabled=False):
            student, teachers = full_precision(student), [full_precision(t) for t in teachers]
            if method is None:
                return {"task": context.task.loss(student.output, batch)}
            return method.loss(batch, student, teachers)

    steps = method.train_steps() if method is not None else None
    trained = run_training(context, step_losses, steps=steps, stream=stream, epoch_start=view.epoch_start)
    return method.trained(trained) if method is not None else trained


def _setup(context: TrainContext, view: TrainingView) -> None:
    """Let the method size its extras from the outputs on the task's first (unshuffled) training batch,
    before the optimiser is built. The view's own ``batch`` is not asked: its draws belong to training."""
    assert context.method is not None
    batch = to_device(next(iter(context.task.batches("train", None, None))), context.device)
    with torch.no_grad():
        was_training = context.model.training
        context.model.eval()
        student = view.student(batch)
        context.model.train(was_training)
    context.method.setup(student, view.teachers(batch))


def run_training(context: TrainContext, step_losses: StepLosses, *, steps: int | None = None,
                 stream: BatchStream | None = None,
                 epoch_start: Callable[[int], None] = lambda epoch: None) -> nn.Module:
    """The loop, given how one batch's named loss terms are computed.

    Runs the recipe's epochs, or ``steps`` optimiser steps in rounds; ``stream`` continues a
    run's batches (a fresh, seeded one by default). It optimises ``context.model`` and the
    method's own trainable parameters (peers included, when the method keeps them as
    submodules) and returns ``context.model`` at the chosen checkpoint.
    """
    task, model, recipe, method = context.task, context.model, context.recipe, context.method
    stream = stream or BatchStream.for_run(context)
    rounds = _rounds(stream, recipe.epochs if steps is None else None, steps)
    if method is not None:
        method.epochs = len(rounds)
    parameters = list(model.parameters()) + (list(method.parameters()) if method is not None else [])
    optimizer = make_optimizer([p for p in parameters if p.requires_grad], recipe)
    schedule = make_schedule(optimizer, recipe if steps is None else recipe.updated({"schedule": "constant"}))
    scaler = gradient_scaler(context.device, recipe.precision)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    has_val = task.has_split("val")
    step = 0
    for epoch, batches in enumerate(rounds, start=1):
        scheduled = [group["lr"] for group in optimizer.param_groups]
        model.train()
        if method is not None:
            method.train()
            method.epoch = epoch
        epoch_start(epoch)
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for batch in batches():
            with autocast(context.device, recipe.precision):
                terms = step_losses(to_device(batch, context.device, recipe.channels_last))
            total = sum(terms.values())
            if not torch.isfinite(total):
                values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                raise DivergedError(f"non-finite loss at epoch {epoch}: {values}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if recipe.clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(parameters, recipe.clip_grad_norm)
            step += 1
            if step <= recipe.warmup_steps:
                for group, rate in zip(optimizer.param_groups, scheduled, strict=True):
                    group["lr"] = rate * step / recipe.warmup_steps
            scaler.step(optimizer)
            scaler.update()
            if method is not None:
                method.after_step(model)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.detach()
            count += 1
            context.on_batch()
        for group, rate in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = rate  # the schedule goes on from the epoch's own rate, not a warm-up's
        schedule.step()
        metrics = {"train_loss": sum(float(v) for v in sums.values()) / max(count, 1)}
        if len(sums) > 1:
            metrics.update({f"train_loss_{k}": float(v) / count for k, v in sums.items()})
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


def _rounds(stream: BatchStream, epochs: int | None, steps: int | None) -> list[Callable[[], Iterator[Batch]]]:
    """Each round's batches: one epoch each, or ``ROUND_STEPS`` steps each (the last one shorter)."""
    if epochs is not None:
        return [stream.epoch] * epochs
    assert steps is not None
    sizes = [ROUND_STEPS] * (steps // ROUND_STEPS) + [steps % ROUND_STEPS] * bool(steps % ROUND_STEPS)
    return [lambda size=size: stream.take(size) for size in sizes]


def make_optimizer(parameters: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's schedule over its epochs. A budget of steps trains at a constant rate, as
    the step-distillation papers do: its rounds are a logging period, not an epoch."""
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)

