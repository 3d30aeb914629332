"""A frozen teacher as a method sees it: its outputs on training batches, and its network only when declared.

A method says what it reads from the teacher (``Method.needs``), and this handle holds it to
that. ``generate(batch)`` answers what the teacher writes (a language model's continuations of
the batch's prompts) — all a ``samples`` method may have, so sequence-level KD provably learns
from text and never from a distribution. ``outputs(batch)`` answers the teacher's output on a
batch the task's training view prepared — all a black-box (``logits``) method may have, so its
features are hidden; a
``features`` method sees the named features too; only a ``model`` method may take the network
itself (to run it on inputs it makes: noised samples, its own trajectories, its weights as
a start). A method that reads more than it declared stops its run with ``ContractError``,
so the black-box check and the output caches can trust the declaration.

When outputs alone are needed and the training inputs are the same every epoch, the
teacher's outputs over the training split are computed once (on first use), looked up by
sample index, and reused by every method of the same teacher; offline KD then costs about
what training the student alone costs. Otherwise the teacher runs on every batch. The table
holds the outputs as the task packs them (``Task.pack_outputs``: float16 distributions, top-k
log-probabilities) and answers them unpacked (``Task.unpack_outputs``), since a language
model's full distributions over every training position may not fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from kdbench.model import ModelOutput
from kdbench.model_call import call_model
from kdbench.task import Batch, Task

NEEDS = ("none", "samples", "logits", "features", "model")
"""What a method may read from a teacher, each including what comes before it."""


class ContractError(RuntimeError):
    """A method read more of its teacher than its ``needs`` declared."""


class HiddenFeatures(Mapping[str, torch.Tensor]):
    """A black-box teacher's features: none, and reading one says whose declaration forbids it."""

    def __init__(self, method: str) -> None:
        self.method = method

    def __getitem__(self, name: str) -> torch.Tensor:
        raise ContractError(f"method {self.method} declares needs = 'logits' but read the teacher's "
                            f"feature '{name}'; declare needs = 'features'")

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Teacher:
    def __init__(self, task: Task, model: nn.Module, *, method: str, needs: str, cached: bool,
                 tables: dict[str, torch.Tensor] | None = None, key: str = "") -> None:
        """``method``/``needs``: who reads the teacher and what it declared; ``cached``: whether
        outputs may come from a table indexed by sample (the task's inputs are deterministic);
        ``tables``: where tables are kept by teacher ``key``, so each teacher's is computed once
        and reused by every method that distils from it."""
        if needs not in NEEDS[1:]:
            raise ValueError(f"needs must be one of {NEEDS[1:]} for a method with a teacher, not {needs!r}")
        self.task = task
        self.method = method
        self.needs = needs
        self._network = model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self._cacheable = cached and needs == "logits"
        self._tables = tables if tables is not None else {}
        self._key = key

    @property
    def model(self) -> nn.Module:
        """The teacher network, for a method that declared ``needs = 'model'``."""
        if self.needs != "model":
            raise ContractError(f"method {self.method} declares needs = {self.needs!r} but read the teacher "
                                "network; declare needs = 'model'")
        return self._network

    @property
    def table(self) -> torch.Tensor | None:
        """The outputs over the training split by sample index, computed on first use; ``None``
        when they may not be cached (or are not tensors)."""
        if self._cacheable and self._key not in self._tables:
            table = self._precompute()
            if table is None:
                self._cacheable = False
                return None
            self._tables[self._key] = table
        return self._tables[self._key] if self._cacheable else None

    @property
    def cached(self) -> bool:
        return self._cacheable

    @torch.no_grad()
    def generate(self, batch: Batch, generator: torch.Generator, **options: Any) -> Batch:
        """What the teacher writes from ``batch`` (``Task.generate``, with the method's sampling
        ``options``): every method with a teacher may read this much."""
        return self.task.generate(self._network, batch, generator, **options)

    @torch.no_grad()
    def _precompute(self) -> torch.Tensor | None:
        """The table: each training batch's outputs as the task packs them (``Task.pack_outputs``),
        written into it batch by batch, so what is ever held is the packed table and one batch's
        outputs — never the whole split at the teacher's own size."""
        table: torch.Tensor | None = None
        for batch in self.task.batches("train", None, None):
            output = call_model(self._network, self.task.model_input(batch, "teacher")).output
            if not isinstance(output, torch.Tensor):
                return None  # structured outputs are not cached
            rows = self.task.pack_outputs(output)
            if table is None:
                # kept where the teacher computed it when it fits (looking a batch up is then an index, no copy)
                shape, device = (self.task.num_train, *rows.shape[1:]), rows.device
                if device.type == "cuda":
                    needed = rows.element_size() * torch.Size(shape).numel()
                    device = device if needed < torch.cuda.mem_get_info(device)[0] // 4 else torch.device("cpu")
                table = torch.empty(shape, dtype=rows.dtype, device=device)
            table[batch["index"].to(table.device)] = rows.to(table.device)
        return table

    @torch.no_grad()
    def outputs(self, batch: Batch) -> ModelOutput:
        """The teacher's output on ``batch`` — with its features unless the method is black-box.

        A training batch's ``index`` says which rows of the table answer it; a view that changes
        a batch's inputs drops the index, and the teacher then runs on them.
        """
        if self.needs == "samples":
            raise ContractError(f"method {self.method} declares needs = 'samples' but read the teacher's outputs; "
                                "declare needs = 'logits'")
        table = self.table if "index" in batch else None  # a batch without an index is no training batch
        if table is not None:
            rows = table[batch["index"].to(table.device)].to(batch["index"].device, non_blocking=True)
            return ModelOutput(self.task.unpack_outputs(rows), HiddenFeatures(self.method))
        out = call_model(self._network, self.task.model_input(batch, "teacher"))
        return out if self.needs != "logits" else ModelOutput(out.output, HiddenFeatures(self.method))
