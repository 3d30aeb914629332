"""Gu, Dong, Wei & Huang, "MiniLLM: Knowledge Distillation of Large Language Models" (ICLR 2024,
arXiv:2306.08543; reference code github.com/microsoft/LMOps, minillm/)."""

from __future__ import annotations

from kdbench import Range
from kdbench_text.gkd import GKD


class MiniLLM(GKD):
    """Reverse KL(student ‖ teacher), token by token, on text the student wrote itself — always.

    MiniLLM minimises the sequence-level reverse KL by policy gradient; its single-step term (the
    exact reverse KL of the next-token distributions at each position of the student's samples)
    is the part that needs no reward estimate, and is what this method optimises: on-policy
    (λ = 1) generalised JSD at β = 1. Sampling at temperature 1, as MiniLLM's training samples
    (top-p 1, top-k 0). Left out: the policy-gradient long-term term, teacher-mixed sampling and
    the pre-training loss MiniLLM adds on its own corpus.
    """

    name = "minillm"
    defaults = {"beta": 1.0, "lmbda": 1.0, "temperature": 1.0}
    search_space = {"temperature": Range(0.7, 1.3)}
    """Only how the student samples is free: on-policy reverse KL is the method."""
