"""Yang, Qiu, Song, Tao & Wang, "Distilling Knowledge from Graph Convolutional Networks"
(LSP, CVPR 2020, arXiv:2003.10477)."""

from __future__ import annotations

from typing import Any

import torch

from kdbench import Batch, IncompatibleCombination, ModelOutput, ModelSpec, Range, Task
from kdbench_graph.models import GraphModelSpec
from kdbench_graph.transductive import WholeGraphMethod


def local_structure(embeddings: torch.Tensor, edge_index: torch.Tensor,
                    scale: float) -> torch.Tensor:
    """Each node's distribution over its neighbours: a softmax, over the edges j → i into node
    i, of the similarity exp(−‖z_i − z_j‖₁ / scale). One value per edge."""
    from torch_geometric.utils import softmax  # torch-geometric loads in seconds: only when used

    source, target = edge_index
    similarity = torch.exp(-(embeddings[target] - embeddings[source]).abs().sum(1) / scale)
    return softmax(similarity, target, num_nodes=len(embeddings))


def lsp_divergence(student: torch.Tensor, teacher: torch.Tensor, edge_index: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """KL(teacher ‖ student) between the nodes' neighbour distributions, averaged over nodes."""
    p_student = local_structure(student, edge_index, scale)
    p_teacher = local_structure(teacher, edge_index, scale)
    return (p_teacher * (p_teacher.log() - p_student.log())).sum() / len(student)


class LSP(WholeGraphMethod):
    """Cross-entropy plus λ · the local-structure-preserving loss on every node's neighbourhood.

    How the teacher arranges each node's neighbours in its embedding space (which are near,
    which far) is matched, not the embeddings themselves, so widths may differ and no
    adapter is learnt. The similarity kernel (exp of the negative L1 distance over
    ``scale`` = 100), the KL direction (teacher first) and λ = 1 are those of the authors'
    code (DistillGCN.PyTorch). Computed over every node, since the structure needs no
    labels, on the last hidden layer of both models.
    """

    name = "lsp"
    needs = "features"
    defaults = {"student_feature": "embedding", "teacher_feature": "embedding", "weight": 1.0,
                "scale": 100.0}
    search_space = {"weight": Range(0.1, 10.0, log=True), "scale": Range(10.0, 1000.0, log=True)}
    """A decade either side of the authors' code: lambda = 1, kernel scale 100."""

    @classmethod
    def check(cls, task: Task, teachers: list[ModelSpec], student: ModelSpec) -> None:
        super().check(task, teachers, student)
        if not (isinstance(student, GraphModelSpec) and student.reads_edges):
            raise IncompatibleCombination(
                "lsp matches neighbourhoods in the student's embedding and needs a "
                f"message-passing student; {student.name} reads no edges")

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        if params["weight"] < 0:
            raise ValueError(f"weight must not be negative, got {params['weight']}")
        if params["scale"] <= 0:
            raise ValueError(f"scale must be positive, got {params['scale']}")

    def loss(self, batch: Batch, student: ModelOutput, teachers: list[ModelOutput]) -> dict[str, torch.Tensor]:
        teacher = teachers[0]
        divergence = lsp_divergence(student.features[self.student_feature],
                                    teacher.features[self.teacher_feature], batch["edge_index"],
                                    self.scale)
        return {"task": self.labelled(batch, student), "lsp": self.weight * divergence}
