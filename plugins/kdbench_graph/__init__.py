"""Graph: node classification on the Planetoid citation graphs; GNN → GNN and GNN → MLP (GLNN).

Tasks ``cora``, ``citeseer``, ``pubmed`` follow the CPF/GLNN protocol (largest component,
20/30 labelled nodes per class, split redrawn per seed); ``*-public`` use the fixed
Planetoid split. Teachers ``sage``, ``gcn``; students ``gcn-small``, ``mlp``. Methods
``glnn`` and ``lsp`` distil on every node of the graph.
"""

from __future__ import annotations

from functools import partial

from kdbench import DatasetSpec, Method, ModelSpec, TaskSpec, hookimpl
from kdbench_graph import models
from kdbench_graph.glnn import GLNN
from kdbench_graph.lsp import LSP
from kdbench_graph.planetoid import GRAPHS, PLANETOID, build_planetoid


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    specs = []
    for name in GRAPHS:
        specs.append(TaskSpec(name.lower(), "classification", "graph",
                              partial(build_planetoid, name, "cpf"),
                              f"{name}, largest component, 20/30 labelled nodes per class for "
                              "train/val (CPF/GLNN protocol); split redrawn per seed unless "
                              "split_seed is set",
                              options={"split_seed": None}))
        specs.append(TaskSpec(f"{name.lower()}-public", "classification", "graph",
                              partial(build_planetoid, name, "public"),
                              f"{name}, whole graph, the fixed Planetoid public split"))
    return specs


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [models.SAGE, models.GCN]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [models.GCN_SMALL, models.MLP]


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [GLNN, LSP]


@hookimpl
def kdbench_datasets() -> list[DatasetSpec]:
    return [PLANETOID]
