"""KD with the reverse KL, as argued by Gu, Dong, Wei & Huang, "MiniLLM: Knowledge Distillation of
Large Language Models" (ICLR 2024, arXiv:2306.08543)."""

from __future__ import annotations

from kdbench_methods.kd import KD


class ReverseKD(KD):
    """Hinton KD with KL(student ‖ teacher) at temperature T in place of KL(teacher ‖ student).

    MiniLLM argues that the forward KL makes a small student spread mass over every mode of
    a large teacher, while the reverse KL lets it lock onto the teacher's major modes. MiniLLM
    optimises it over generated sequences with policy gradients; for classification the
    reverse KL of the two class distributions is exact and differentiable, so it is used
    directly. T and α keep KD's defaults so the two rows differ only in the KL's direction.
    """

    name = "kd-reverse"
    reverse = True
