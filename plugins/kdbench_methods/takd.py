"""Mirzadeh, Farajtabar, Li, Levine, Matsukawa & Ghasemzadeh, "Improved Knowledge Distillation via
Teacher Assistant" (AAAI 2020, arXiv:1902.03393)."""

from __future__ import annotations

from typing import Any

from torch import nn

from kdbench import Method, Range, TrainContext, UserError, check_soft_target_params
from kdbench_methods.stages import frozen, train_stage


class TAKD(Method):
    """KD through a mid-sized teacher assistant: teacher → assistant → student.

    When the teacher–student gap is large, the student learns better from an assistant of
    intermediate size, itself distilled from the teacher. ``assistant`` names any registered
    model and a suite must set it (which one lies between a teacher and a student is the
    suite's knowledge, not the method's); it is trained with the student's recipe and seed,
    its curves logged as ``assistant_…``. Both steps are Hinton KD with ``kd``'s defaults (T = 4, α = 0.9; the
    paper searched T and λ per pair).
    """

    name = "takd"
    kinds = ("classification",)
    scheme = "offline"
    needs = "logits"
    defaults = {"assistant": None, "T": 4.0, "alpha": 0.9}
    search_space = {"T": Range(1.0, 20.0, log=True), "alpha": Range(0.0, 1.0)}
    """As kd's (the paper searched T and lambda per pair); the assistant is the suite's choice, not a knob."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not isinstance(params["assistant"], str) or not params["assistant"]:
            raise ValueError("takd needs params.assistant: the registered model (between the teacher's size and "
                             "the student's) that is distilled first")
        check_soft_target_params(params)

    def fit(self, context: TrainContext) -> nn.Module:
        if context.build_model is None:
            raise UserError("takd needs TrainContext.build_model to create its assistant")
        kd = {"T": self.T, "alpha": self.alpha}
        assistant = context.build_model(self.assistant)
        assistant = train_stage(context, assistant, context.teachers[0], "assistant_", main=False, **kd)
        teacher = frozen(context, assistant)
        return train_stage(context, context.model, teacher, None, main=True, **kd)
