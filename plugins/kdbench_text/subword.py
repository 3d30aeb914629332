"""Language modelling over subword tokens: the character task's windows, losses, generation and
metrics (``LanguageModelingTask``) with a tokeniser whose ids stand for several characters, and a
teacher table that keeps each position's top-k log-probabilities instead of the whole distribution.

**Metrics.** The primary metric is per-token perplexity, exp of the mean NLL per target token —
the tokeniser's own unit, as language-model papers report it. Bits per character are reported as
well, and honestly: a target id stands for the characters it decodes to (the tokeniser's
``lengths``), so a split's NLL in bits is divided by the characters of its target tokens. On every
Austen and Shakespeare file those lengths add up to the text's length exactly (``test_smollm2.py``
checks it), so ``bpc`` and ``perplexity`` (per character, 2^bpc) mean what they mean on the character
task, over the same characters (the corpus is split as text, before tokenising; a document's
first token is never a target, as its first character is not there).

**Top-k teacher table.** A 49,152-id distribution at every training position does not fit: Austen's
0.8 M training tokens would take 157 GB in float32. ``pack_top_k`` keeps the k most likely ids and
their log-probabilities (float32; ids are exact in float32 below 2^24) and ``unpack_top_k`` returns
dense logits: the top-k log-probabilities where they were, and the tail's remaining mass spread
evenly over the other ids. Their softmax keeps the top-k probabilities exactly and the tail's total
mass; what is lost is how the tail's mass is distributed. At a KD temperature above 1 that matters:
softening a uniform tail of ~49,000 ids raises its share far more than softening the teacher's
real, very uneven tail would (the suite's header gives the measured size of the effect).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kdbench_text.task import LanguageModelingTask

TAIL_FLOOR = 1e-12
"""The least tail mass an unpacked row gives the ids outside its top k: where the top-k
probabilities sum to 1 within rounding, the tail is kept positive (its log finite) at no visible
cost to the total."""


def pack_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits [..., V] as [..., 2k] float32: the k largest log-probabilities, then their ids."""
    values, ids = torch.log_softmax(logits.float(), -1).topk(k, -1)
    return torch.cat([values, ids.float()], -1)


def unpack_top_k(rows: torch.Tensor, vocabulary: int) -> torch.Tensor:
    """Dense logits [..., V] from packed rows [..., 2k]: the kept log-probabilities at their ids,
    and log(tail / (V − k)) at every other id, the tail being 1 − the kept probabilities. Already
    normalised: their softmax is the distribution they describe."""
    k = rows.shape[-1] // 2
    values, ids = rows[..., :k].float(), rows[..., k:].long()
    tail = (1 - values.exp().sum(-1, keepdim=True)).clamp(min=TAIL_FLOOR)
    dense = (tail / (vocabulary - k)).log().expand(*rows.shape[:-1], vocabulary).contiguous()
    return dense.scatter(-1, ids, values)


class SubwordLanguageModelingTask(LanguageModelingTask):
    """``LanguageModelingTask`` over a subword tokeniser: per-token perplexity first, bits per
    character beside it, generation judged per character, and a top-k teacher table (this module's
    docstring). ``prompts``, ``prompt_length`` and ``continuation`` count tokens."""

    primary_metric = "token_perplexity"
    eval_batch_size = 32
    """[32, 128, 49,152] float32 logits are 0.8 GB: 256 windows at once would be 6.4 GB."""

    def __init__(self, *args: Any, top_k: int, **options: Any) -> None:
        super().__init__(*args, **options)
        if not 0 < top_k < len(self.vocabulary):
            raise ValueError(f"top_k must lie between 1 and the vocabulary's {len(self.vocabulary) - 1}, got {top_k}")
        self.top_k = top_k
        self.info["tokenizer"] = self.vocabulary.name

    def pack_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """The teacher's top-k log-probabilities and ids per position: 8·k bytes a position (k = 128:
        0.8 GB for Austen's 0.8 M training tokens) instead of 196,608."""
        return pack_top_k(outputs, self.top_k)

    def unpack_outputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Dense float32 logits whose softmax keeps the top-k probabilities and the tail's total mass."""
        return unpack_top_k(rows, len(self.vocabulary))

    def split_metrics(self, model: torch.nn.Module, split: str) -> dict[str, float]:
        """Per-token perplexity, and bits per character with the per-character perplexity 2^bpc."""
        total, tokens, characters = self.scores(model, split)
        return {"token_perplexity": math.exp(total / tokens), "bpc": total / characters / math.log(2),
                "perplexity": math.exp(total / characters)}

    def judged_nll(self, logits: torch.Tensor, written: torch.Tensor) -> float:
        """The judge's NLL of the written tokens per character they decode to."""
        nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), written.reshape(-1), reduction="sum")
        return (nats / self.vocabulary.lengths.to(written.device)[written].sum()).item()
