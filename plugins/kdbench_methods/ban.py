"""Furlanello, Lipton, Tschannen, Itti & Anandkumar, "Born-Again Neural Networks" (ICML 2018,
arXiv:1805.04770)."""

from __future__ import annotations

from typing import Any

from torch import nn

from kdbench import Method, Range, TrainContext, UserError, check_soft_target_params
from kdbench_methods.stages import frozen, train_stage


class BAN(Method):
    """Generations of the student's own architecture, each distilled from the one before.

    Generation 1 learns from labels alone (it is the student-only baseline with the same
    seed); generation k + 1, freshly initialised, learns by KD from generation k. Born-again
    students learn from the teacher's output alone at T = 1 (α = 1), as in the paper. Each
    generation's curves are logged as ``gen{k}_…``; the last generation is the run's model.
    The paper runs up to 5 generations (and ensembles them); 2 keeps CPU runs affordable.
    """

    name = "ban"
    kinds = ("classification",)
    scheme = "self"
    needs = "none"
    defaults = {"generations": 2, "T": 1.0, "alpha": 1.0}
    search_space = {"T": Range(1.0, 20.0, log=True)}
    """The paper distils at T = 1; up to kd's 20 (Hinton et al.). Generations are the scheme's size."""

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not isinstance(params["generations"], int) or params["generations"] < 1:
            raise ValueError(f"generations must be an integer >= 1, got {params['generations']}")
        check_soft_target_params(params)

    def fit(self, context: TrainContext) -> nn.Module:
        if context.build_model is None and self.generations > 1:
            raise UserError("ban needs TrainContext.build_model to create new generations")
        model, teacher = context.model, None
        for generation in range(1, self.generations + 1):
            if generation > 1:
                teacher, model = frozen(context, model), context.build_model(None)
            last = generation == self.generations
            model = train_stage(context, model, teacher, f"gen{generation}_", main=last, T=self.T,
                                alpha=self.alpha)
        return model
