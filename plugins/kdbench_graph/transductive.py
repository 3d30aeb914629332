"""Methods whose loss reads every node of the graph, labelled or not (transductive distillation).

A training batch holds the labelled nodes; GLNN and LSP also learn from the teacher on the
unlabelled ones. Their view runs the student on the whole graph at each step and hands
``loss`` the whole-graph outputs of student and teacher (row i is node i) beside the
labelled batch. The frozen teacher's whole-graph output is asked of it once — it is the
same every epoch — which is the teacher cache doing for every node what the core's cache
does for the labelled ones.
"""

from __future__ import annotations

import torch

from kdbench import (
    Batch,
    IncompatibleCombination,
    Method,
    ModelOutput,
    ModelSpec,
    Task,
    TrainContext,
    TrainingView,
    call_model,
)
from kdbench_graph.task import NodeClassification


class WholeGraphView(TrainingView):
    def __init__(self, context: TrainContext, generator: torch.Generator) -> None:
        super().__init__(context, generator)
        assert isinstance(context.task, NodeClassification)
        self.graph = context.task.whole_graph()
        self.teacher_outputs = [teacher.outputs(self.graph) for teacher in context.teachers]

    def student(self, batch: Batch) -> ModelOutput:
        return call_model(self.context.model, self.task.model_input(self.graph, self.context.role))

    def teachers(self, batch: Batch) -> list[ModelOutput]:
        return self.teacher_outputs


class WholeGraphMethod(Method):
    kinds = ("classification",)
    scheme = "offline"
    view = WholeGraphView

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        super().check(task, teachers, student)
        if not isinstance(task, NodeClassification):
            raise IncompatibleCombination(f"method {cls.name} distils on every node of a graph; "
                                          "the task is not node classification")

    def labelled(self, batch: Batch, student: ModelOutput) -> torch.Tensor:
        """The hard-label loss on the batch's labelled nodes, read off whole-graph outputs."""
        return self.task.loss(student.output[batch["nodes"]], batch)
