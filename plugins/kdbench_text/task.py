"""Character-level language modelling as a kdbench task of kind ``language-modeling``.

Training batches are fixed windows of ``context`` characters cut from each document's training
part, one after another (the last window of a document is shorter and padded; ``mask`` marks the
positions that have a target), so a window's teacher distribution can be cached by its index.
Perplexity alone favours forward KL by construction (it is the forward KL to the data), so a
test evaluation also scores what the model *writes*: from fixed held-out prompts the model
samples continuations, which the teacher scores (its per-character NLL of them, MiniLLM's
argument) and whose word bigrams are counted for diversity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import Batch, Recipe, Task, call_model
from kdbench_text.corpus import Corpus, Vocabulary

SAMPLING_SEED = 0
"""Seeds the evaluation's sampled continuations: every model continues the same prompts from the
same random stream, so two rows differ by their models only."""
SHOWN_SAMPLES = 4
"""Continuations kept as the run's text sample."""


def windows(documents: list[torch.Tensor], context: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, next-character targets and the mask of real targets, [N, context] each, from
    consecutive non-overlapping windows of every document; a document's last window is padded."""
    xs, ys, masks = [], [], []
    for ids in documents:
        for start in range(0, len(ids) - 1, context):
            piece = ids[start:start + context + 1]
            length = len(piece) - 1
            x, y = torch.zeros(context, dtype=torch.long), torch.zeros(context, dtype=torch.long)
            x[:length], y[:length] = piece[:-1], piece[1:]
            mask = torch.zeros(context, dtype=torch.bool)
            mask[:length] = True
            xs.append(x), ys.append(y), masks.append(mask)
    return torch.stack(xs), torch.stack(ys), torch.stack(masks)


def token_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood (nats) summed over the masked positions: summed, so that batches of
    any size and padding combine into one per-character mean."""
    return F.cross_entropy(logits[mask].float(), targets[mask], reduction="sum")


@torch.no_grad()
def sample(model: nn.Module, prompts: torch.Tensor, length: int, temperature: float,
           generator: torch.Generator) -> torch.Tensor:
    """``length`` ids continuing each prompt [B, P], drawn from ``model``'s next-token distribution
    at ``temperature`` (0: the most likely id), through the model's key-value cache (``step``)."""
    was_training = model.training
    model.eval()
    logits, cache = model.step(prompts)
    drawn = []
    for position in range(length):
        if temperature == 0:
            ids = logits.argmax(-1, keepdim=True)
        else:
            probabilities = torch.softmax(logits.float() / temperature, -1)
            ids = torch.multinomial(probabilities.cpu(), 1, generator=generator).to(prompts.device)
        drawn.append(ids)
        if position + 1 < length:
            logits, cache = model.step(ids, cache)
    model.train(was_training)
    return torch.cat(drawn, 1)


def distinct(texts: list[str], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams over all word n-grams of the texts."""
    grams = [tuple(words[i:i + n]) for words in (text.split() for text in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


class LanguageModelingTask(Task):
    kind = "language-modeling"
    primary_metric = "bpc"
    higher_is_better = False
    eval_batch_size: ClassVar[int] = 256
    """Windows per batch when nothing trains (evaluation, the teacher's table)."""

    def __init__(self, corpus: Corpus, vocabulary: Vocabulary, recipes: dict[str, Recipe], *, context: int,
                 val_windows: int | None, prompts: int, prompt_length: int, continuation: int,
                 temperature: float, transfer: Corpus | None = None, transfer_windows: int | None = None) -> None:
        """``val_windows``: the validation windows scored each epoch (evenly spaced; ``None``: all);
        ``prompts`` held-out prompts of ``prompt_length`` ids, each continued by ``continuation``
        sampled ids at ``temperature``; ``transfer``: a second corpus whose test part is scored too
        (``transfer_windows`` of it), for a domain-transfer column."""
        super().__init__()
        if prompt_length + continuation > context:
            raise ValueError(f"a prompt of {prompt_length} and a continuation of {continuation} ids "
                             f"exceed the context of {context}")
        self.corpus = corpus
        self.vocabulary = vocabulary
        self.recipes = recipes
        self.info = {"vocabulary": len(vocabulary), "context": context}
        self.splits = {split: windows(corpus.splits[split], context) for split in ("train", "val", "test")}
        self.splits["val"] = _evenly(self.splits["val"], val_windows)
        if transfer is not None:
            self.splits["transfer"] = _evenly(windows(transfer.splits["test"], context), transfer_windows)
            self.transfer_name = transfer.name
        test_x = self.splits["test"][0]
        full = self.splits["test"][2].all(1).nonzero().flatten()
        if prompts and not len(full):
            raise ValueError(f"no test window has {context} real positions to cut the {prompts} prompts from: "
                             "lengthen the documents or shorten the context")
        chosen = full[torch.linspace(0, len(full) - 1, prompts).round().long()]
        self.prompts = test_x[chosen, :prompt_length]
        self.continuation = continuation
        self.temperature = temperature
        self._last_samples: dict[str, str] = {}

    def pack_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """The teacher's full next-character distributions, in float16: 82 ids per position keep all of
        its mass (a top-k table would drop its tail) at 164 bytes a position, about 0.5 GB for
        Austen's 3.2 M training characters."""
        return outputs.half()

    def unpack_outputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Handed to methods as float32 logits, as the teacher computed them less float16's rounding."""
        return rows.float()

    @property
    def num_train(self) -> int:
        return len(self.splits["train"][0])

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def deterministic(self, recipe: Recipe) -> bool:
        return True  # the windows never change, so the teacher's distributions over them may be cached

    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator | None) -> Iterator[Batch]:
        x, y, mask = self.splits[split]
        training = split == "train" and recipe is not None
        order = torch.randperm(len(x), generator=generator) if training else torch.arange(len(x))
        size = recipe.batch_size if recipe is not None else self.eval_batch_size
        for start in range(0, len(order), size):
            index = order[start:start + size]
            batch = {"x": x[index], "y": y[index], "mask": mask[index]}
            if split == "train":
                batch["index"] = index
            yield batch

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Cross-entropy per character: averaged over the batch's real targets, padding left out."""
        mask = batch["mask"]
        return token_nll(output, batch["y"], mask) / mask.sum().clamp(min=1)

    def generate(self, model: nn.Module, batch: Batch, generator: torch.Generator, *, temperature: float = 1.0,
                 prompt_share: float = 0.5) -> Batch:
        """Each window's first ``prompt_share`` of characters kept as a prompt, the rest of it
        written by ``model`` at ``temperature``; only the written positions are targets. A window
        with fewer real characters than the prompt has no target."""
        x, mask = batch["x"], batch["mask"]
        length = x.shape[1]
        keep = max(1, round(prompt_share * length))
        written = sample(model, x[:, :keep], length + 1 - keep, temperature, generator)
        sequence = torch.cat([x[:, :keep], written.to(x.device)], 1)
        targets = torch.zeros_like(mask)
        targets[:, keep - 1:] = mask[:, keep - 1:keep].expand(-1, length + 1 - keep)
        return {"x": sequence[:, :-1], "y": sequence[:, 1:], "mask": targets}

    def latency_input(self, role: str) -> torch.Tensor:
        return self.splits["test"][0][:1]

    @torch.no_grad()
    def scores(self, model: nn.Module, split: str) -> tuple[float, int, int]:
        """The negative log-likelihood (nats) summed over ``split``'s real targets, the number of those
        targets, and the characters they stand for (the vocabulary's ``lengths`` of the target ids;
        an unknown character is no target)."""
        total, count, characters = 0.0, 0, 0
        lengths = self.vocabulary.lengths
        for batch in self.batches(split, None, None):
            logits = call_model(model, batch["x"]).output
            mask = batch["mask"]
            if self.vocabulary.unknown_id is not None:
                mask = mask & (batch["y"] != self.vocabulary.unknown_id)
            total += token_nll(logits, batch["y"].to(logits.device), mask.to(logits.device)).item()
            count += int(mask.sum())
            characters += int(lengths[batch["y"][mask]].sum())
        return total, count, characters

    def nll(self, model: nn.Module, split: str) -> float:
        """Mean negative log-likelihood (nats per character) of ``split``'s real targets."""
        total, _, characters = self.scores(model, split)
        return total / characters

    def split_metrics(self, model: nn.Module, split: str) -> dict[str, float]:
        """Bits per character and per-character perplexity of ``split``."""
        nll = self.nll(model, split)
        return {"bpc": nll / math.log(2), "perplexity": math.exp(nll)}

    def evaluate(self, model: nn.Module, split: str, role: str, reference: nn.Module | None = None
                 ) -> dict[str, float]:
        was_training = model.training
        model.eval()
        metrics = self.split_metrics(model, split)
        if split == "test":
            if "transfer" in self.splits:
                metrics[f"{self.transfer_name}_bpc"] = self.nll(model, "transfer") / math.log(2)
            metrics.update(self._generation(model, reference if reference is not None else model))
        model.train(was_training)
        return metrics

    @torch.no_grad()
    def _generation(self, model: nn.Module, judge: nn.Module) -> dict[str, float]:
        """What the model writes: continuations of the held-out prompts, scored by ``judge`` (the
        teacher; a teacher judges itself), their diversity, and the speed of writing them."""
        device = next(model.parameters()).device
        prompts = self.prompts.to(device)
        generator = torch.Generator().manual_seed(SAMPLING_SEED)
        written = sample(model, prompts, self.continuation, self.temperature, generator)
        sequences = torch.cat([prompts, written], 1)
        logits = call_model(judge, sequences[:, :-1]).output.float()
        start = prompts.shape[1] - 1  # the position whose target is the first written id
        judged = self.judged_nll(logits[:, start:], written.to(logits.device))
        texts = [self.vocabulary.decode(ids) for ids in written.cpu()]
        self._last_samples = {"generated.txt": "\n\n".join(
            f"[prompt] {self.vocabulary.decode(prompt)}\n[written] {text}"
            for prompt, text in zip(self.prompts[:SHOWN_SAMPLES], texts[:SHOWN_SAMPLES], strict=True))}
        return {"teacher_nll": judged, "distinct_2": distinct(texts),
                "tokens_per_s": generation_speed(model, prompts[:1], self.continuation)}

    def judged_nll(self, logits: torch.Tensor, written: torch.Tensor) -> float:
        """The judge's NLL of the written ids [B, L] given its logits at their positions [B, L, V],
        in nats per character: here an id is a character, so the mean over ids."""
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), written.reshape(-1)).item()

    def text_samples(self, model: nn.Module, role: str) -> dict[str, str]:
        """The first continuations the test evaluation wrote, beside their prompts."""
        return dict(self._last_samples)


def generation_speed(model: nn.Module, prompt: torch.Tensor, tokens: int) -> float:
    """Tokens per second writing one stream on one CPU thread (the median of three timings):
    a served model answers one reader at a time, and one thread is what every row gets."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = []
        for _ in range(3):
            began = time.perf_counter()
            sample(model, prompt, tokens, 0.0, torch.Generator())
            timings.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)
    return tokens / sorted(timings)[1]


def _evenly(split: tuple[torch.Tensor, ...], count: int | None) -> tuple[torch.Tensor, ...]:
    """``count`` windows spread evenly over the split (all when ``None`` or more than there are)."""
    total = len(split[0])
    if count is None or count >= total:
        return split
    chosen = torch.linspace(0, total - 1, count).round().long()
    return tuple(part[chosen] for part in split)


def task_options() -> dict[str, Any]:
    """The task's options and their defaults (what a suite may override)."""
    return {"context": 128, "chars_per_document": None, "val_windows": 256, "prompts": 32, "prompt_chars": 64,
            "continuation": 64, "temperature": 1.0, "transfer": "shakespeare", "transfer_windows": 512}
