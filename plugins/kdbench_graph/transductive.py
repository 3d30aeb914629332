"""Methods whose loss reads every node of the graph, labelled or not (transductive distillation).

A training batch holds the labelled nodes; GLNN and LSP also learn from the teacher on the
unlabelled ones. Such a method owns its loop only to change what the student is run on:
each step runs the student on the whole graph and hands ``loss`` the whole-graph outputs
of student and teacher (row i is node i) beside the labelled batch. The frozen teacher's
whole-graph output is computed once — it is the same every epoch — which is the teacher
cache doing for every node what the core's cache does for the labelled ones.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import (
    Batch,
    IncompatibleCombination,
    Method,
    ModelOutput,
    ModelSpec,
    Task,
    TrainContext,
    call_model,
    run_epochs,
)
from kdbench_graph.task import NodeClassification


class WholeGraphMethod(Method):
    kinds = ("classification",)
    scheme = "offline"

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        super().check(task, teachers, student)
        if not isinstance(task, NodeClassification):
            raise IncompatibleCombination(f"method {cls.name} distils on every node of a graph; "
                                          "the task is not node classification")

    def labelled(self, batch: Batch, student: ModelOutput) -> torch.Tensor:
        """The hard-label loss on the batch's labelled nodes, read off whole-graph outputs."""
        return self.task.loss(student.output[batch["nodes"]], batch)

    def fit(self, context: TrainContext) -> nn.Module:
        task = context.task
        assert isinstance(task, NodeClassification) and context.teacher is not None
        graph = task.whole_graph()
        with torch.no_grad():
            teacher = call_model(context.teacher.model, task.model_input(graph, "teacher"))

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            student = call_model(context.model, task.model_input(graph, context.role))
            return self.loss(batch, student, teacher)

        return run_epochs(context, step)
