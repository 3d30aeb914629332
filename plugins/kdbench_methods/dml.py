"""Zhang, Xiang, Hospedales & Lu, "Deep Mutual Learning" (CVPR 2018, arXiv:1706.00384)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from kdbench import Batch, Method, Task, TrainContext, UserError, call_model, run_training, soft_target_loss


def mutual_losses(task: Task, batch: Batch, outputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each peer's cross-entropy and its mean KL(p_other ‖ p_peer) to every other peer (T = 1).

    The other peers' predictions are detached, so summing all peers' terms and taking one
    gradient step updates each peer by its own loss: the synchronous form of the paper's
    alternating updates, as most reimplementations do it.
    """
    terms = {}
    for k, output in enumerate(outputs, start=1):
        terms[f"task{k}"] = task.loss(output, batch)
        others = [other.detach() for j, other in enumerate(outputs, start=1) if j != k]
        if others:
            mutual = sum(soft_target_loss(output, other, 1.0) for other in others)
            terms[f"mutual{k}"] = mutual / len(others)
    return terms


class DML(Method):
    """K peers of the student's architecture trained together from scratch, no pre-trained teacher.

    Peer 1 is the run's student and the model returned; the others are built with
    ``context.build_model`` and owned by the method (so they count as its extra parameters).
    Training goes through the core's engine (recipe, seed, checkpoint rule); the extra
    peers' validation metrics are logged each epoch as ``peer{k}_val_…``. With one peer DML
    is the student-only baseline.
    """

    name = "dml"
    kinds = ("classification",)
    scheme = "online"
    needs = "none"
    defaults = {"peers": 2}

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if not isinstance(params["peers"], int) or params["peers"] < 1:
            raise ValueError(f"peers must be an integer of at least 1, got {params['peers']}")

    def fit(self, context: TrainContext) -> nn.Module:
        if context.build_model is None and self.peers > 1:
            raise UserError("dml needs TrainContext.build_model to create its peers")
        self.extra_peers = nn.ModuleList(context.build_model(None) for _ in range(self.peers - 1))
        peers = [context.model, *self.extra_peers]

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            inputs = self.task.model_input(batch, context.role)
            outputs = [call_model(peer, inputs).output for peer in peers]
            return mutual_losses(self.task, batch, outputs)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if self.task.has_split("val"):
                for k, peer in enumerate(self.extra_peers, start=2):
                    val = self.task.evaluate(peer, "val", context.role)
                    context.log({f"peer{k}_val_{key}": value for key, value in val.items()}, epoch)
            context.on_epoch(epoch, metrics)

        return run_training(replace(context, on_epoch=on_epoch), step)
