"""Character-level decoders in the style of nanoGPT: learned positions, pre-norm blocks, causal
attention through ``torch.nn.functional.scaled_dot_product_attention``, an output layer tied to the
token embedding.

A model answers ``forward(ids)`` with next-token logits [B, T, V] and the features ``embedding``
and ``block1..N`` (each [B, T, d]), and ``step(ids, cache)`` for generation: the logits of the last
position given the new ids and the keys and values of every earlier one, so sampling n tokens
costs n small forward passes instead of n growing ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task

Cache = list[tuple[torch.Tensor, torch.Tensor]]
"""Per block, the keys and values of the positions seen so far ([B, heads, t, head_dim] each)."""


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, length, width = x.shape
        q, k, v = (part.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
                   for part in self.qkv(x).split(width, dim=2))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        # new positions attend to every cached one and causally among themselves; with one new
        # position (the usual step) that is all of them, which is_causal would wrongly restrict
        causal = past is None and length > 1
        mask = None
        if past is not None and length > 1:
            seen = k.shape[2] - length
            mask = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(seen)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(batch, length, width)), (k, v)


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, present = self.attention(self.norm1(x), past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), present


class CharGPT(nn.Module):
    def __init__(self, vocabulary: int, context: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocabulary, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocabulary, bias=False)
        self.head.weight = self.tokens.weight
        self.apply(_init)

    def _run(self, ids: torch.Tensor, cache: Cache | None) -> tuple[torch.Tensor, dict[str, torch.Tensor], Cache]:
        start = cache[0][0].shape[2] if cache else 0
        if start + ids.shape[1] > self.context:
            raise ValueError(f"{start + ids.shape[1]} positions exceed the model's context of {self.context}")
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)
        features = {"embedding": x}
        present: Cache = []
        for number, block in enumerate(self.blocks, 1):
            x, kv = block(x, cache[number - 1] if cache else None)
            features[f"block{number}"] = x
            present.append(kv)
        return self.head(self.norm(x)), features, present

    def forward(self, ids: torch.Tensor) -> ModelOutput:
        logits, features, _ = self._run(ids, None)
        return ModelOutput(logits, features)

    def step(self, ids: torch.Tensor, cache: Cache | None = None) -> tuple[torch.Tensor, Cache]:
        """Logits [B, V] of the position after ``ids`` [B, t], given ``cache`` of everything before."""
        logits, _, present = self._run(ids, cache)
        return logits[:, -1], present


def _init(module: nn.Module) -> None:
    """GPT-2's initialisation (normal, std 0.02; zero biases), as nanoGPT sets it."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def _builder(width: int, depth: int, heads: int):
    def build(task: Task) -> nn.Module:
        return CharGPT(task.info["vocabulary"], task.info["context"], width, depth, heads)
    return build


def _spec(name: str, width: int, depth: int, heads: int, description: str) -> ModelSpec:
    return ModelSpec(name, _builder(width, depth, heads), kinds=("language-modeling",), modalities=("text",),
                     description=f"{description}: width {width}, {depth} blocks, {heads} heads")


GPT_CHAR_2M = _spec("gpt-char-2m", 192, 4, 6, "character decoder, about 1.8 M parameters (the teacher)")
GPT_CHAR_S = _spec("gpt-char-s", 96, 3, 3, "character decoder, about a fifth of the teacher")
GPT_CHAR_XS = _spec("gpt-char-xs", 64, 3, 2, "character decoder, about a tenth of the teacher")
