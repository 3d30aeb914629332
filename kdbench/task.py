"""The task contract: a dataset plus its evaluation protocol.

A task declares its ``kind`` — the interface methods and models meet it through — and
which batch entry each role reads, so a cross-modal teacher can read LiDAR while its
student reads the camera image of the same batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from kdbench.recipe import Recipe

ROLES = ("teacher", "student")
Batch = dict[str, Any]


class Task(ABC):
    """A built task: data splits, the supervised loss, evaluation and default recipes.

    Batches are dicts. Every training batch carries ``index`` (the samples' positions in
    the training split) so that teacher outputs and memory banks can be keyed by sample.
    """

    kind: ClassVar[str]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    inputs: ClassVar[dict[str, str]] = {"teacher": "x", "student": "x"}
    """Which batch entry each role's model reads."""
    trains_on_subsets: ClassVar[bool] = False
    """Whether ``batches`` honours ``recipe.train_examples``; a suite asking it of a task that does
    not is refused before anything runs."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        """Facts that model builders need (``input_shape``, ``num_classes``, ...)."""

    @property
    @abstractmethod
    def num_train(self) -> int:
        """Number of training samples: the range of ``batch['index']``."""

    @abstractmethod
    def recipe(self, role: str) -> Recipe:
        """The default training recipe for ``role`` ('teacher' or 'student')."""

    @abstractmethod
    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator) -> Iterator[Batch]:
        """Batches of ``split`` ('train', 'val', 'test').

        For 'train' the order is shuffled with ``generator``, ``recipe.augment`` is applied and
        (where ``trains_on_subsets``) only ``recipe.train_examples`` of the samples are drawn;
        other splits come in a fixed order, unaugmented.
        """

    @abstractmethod
    def loss(self, output: Any, batch: Batch) -> torch.Tensor:
        """The supervised (hard-label) loss of a model's output on a batch."""

    @abstractmethod
    def evaluate(
        self, model: nn.Module, split: str, role: str, reference: nn.Module | None = None
    ) -> dict[str, float]:
        """Metrics of ``model`` on ``split``; must include ``primary_metric``.

        ``reference`` is the teacher, given so a task can report student–teacher
        fidelity (top-1 agreement for classification).
        """

    def pictures(self, model: nn.Module, role: str) -> dict[str, bytes]:
        """PNG images worth keeping with a run, by file name (``frame-000.png``): predictions drawn
        over inputs, grids of generated samples — what a reader would rather look at than read.

        Called once after the test evaluation (which may prepare them, so nothing is computed
        twice). The runner logs them as the run's ``pictures/`` artifacts, and the published
        leaderboard shows each row's first run's pictures. Default: none.
        """
        return {}

    def text_samples(self, model: nn.Module, role: str) -> dict[str, str]:
        """Text worth keeping with a run, by file name (``generated.txt``): generated text,
        predictions put in words — what a reader would rather read than see as a number (a
        perplexity says how likely the text is, not whether it makes sense).

        Called once after the test evaluation, like ``pictures``. The runner logs them as the
        run's ``samples/`` artifacts (UTF-8), and the published leaderboard shows the start of each
        row's samples, from its lowest seed that has any. Default: none.
        """
        return {}

    def generate(self, model: nn.Module, batch: Batch, generator: torch.Generator, **options: Any) -> Batch:
        """A batch whose targets ``model`` wrote itself from ``batch``'s inputs — a language model's
        continuations of prompts cut from the batch's windows — with ``mask`` marking the written
        positions and no ``index`` (its inputs are new). What sequence-level KD trains on when it
        is the teacher writing, and on-policy methods when it is the student; ``options`` are the
        method's sampling settings, drawn from ``generator``. Only a kind whose models write
        implements it."""
        raise NotImplementedError(f"{type(self).__name__} cannot generate: its kind's models do not write")

    def pack_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """A teacher's outputs on a batch of training samples [B, ...] as its cached table keeps them
        (``Teacher``: computed once, looked up by ``index``); by default as they are.

        A task whose outputs over the whole training split are too large to keep compresses them
        here: a character model's distributions in float16, a subword model's 49,152-way
        distributions as their top-k log-probabilities. ``unpack_outputs`` gives methods back what
        they expect; the pair decides what a cached teacher answers, so the compression is the
        task's to state. The result must be a tensor whose first dimension is the batch's.
        """
        return outputs

    def unpack_outputs(self, rows: torch.Tensor) -> torch.Tensor:
        """What methods read from the rows ``pack_outputs`` kept for one batch (float32 logits of
        the teacher's full shape, for a language model); by default the rows themselves."""
        return rows

    def has_split(self, split: str) -> bool:
        """Whether ``split`` exists and is non-empty (a task may have no validation split)."""
        return True

    def latency_input(self, role: str) -> Any:
        """The input one inference is timed on: one test sample (a whole graph for node tasks)."""
        batch = next(iter(self.batches("test", None, None)))
        inputs = self.model_input(batch, role)
        if isinstance(inputs, tuple):
            return tuple(item[:1] if isinstance(item, torch.Tensor) else item for item in inputs)
        return inputs[:1] if isinstance(inputs, torch.Tensor) else inputs

    def deployment_input(self, role: str, size: int) -> Any:
        """The input a deployed model serves at batch ``size``: the first ``size`` test samples
        (fewer when the test split has fewer), or ``None`` for a task whose call is not a batch of
        samples (a whole graph)."""
        parts: list[Any] = []
        for batch in self.batches("test", None, None):
            parts.append(self.model_input(batch, role))
            if sum(_length(part) for part in parts) >= size:
                break
        if isinstance(parts[0], tuple):
            return tuple(_joined([part[i] for part in parts], size) for i in range(len(parts[0])))
        return _joined(parts, size)

    def model_input(self, batch: Batch, role: str) -> Any:
        """What the model of ``role`` is called with (a tuple is unpacked into arguments)."""
        return batch[self.inputs[role]]

    def for_seed(self, seed: int) -> Task:
        """The task as the run with ``seed`` sees it; by default the task itself.

        Protocols that redraw the data split for every seed (random node splits on a graph)
        return a view with that seed's split, so one built task serves every seed and a
        seed's teacher and students share its split.
        """
        return self

    def deterministic(self, recipe: Recipe) -> bool:
        """Whether training inputs under ``recipe`` are the same every epoch.

        Only then may teacher outputs be computed once and reused (keyed by ``index``).
        """
        return recipe.augment is None


@dataclass(frozen=True)
class TaskSpec:
    """What a plugin registers: a named, buildable task."""

    name: str
    kind: str
    """A kind some plugin declares (``kdbench_kinds``); the registry refuses others when plugins load."""
    modality: str
    build: Callable[..., Task]
    """Called with the task's options (defaults merged with the suite's) to build it."""
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    """Default options; a suite may override exactly these keys."""


def _length(inputs: Any) -> int:
    first = inputs[0] if isinstance(inputs, tuple) else inputs
    return len(first) if isinstance(first, torch.Tensor) else 1


def _joined(parts: list[Any], size: int) -> Any:
    """Tensors concatenated along the batch and cut to ``size``; anything else as the first part had it."""
    if not isinstance(parts[0], torch.Tensor):
        return parts[0]
    return torch.cat(parts)[:size]
