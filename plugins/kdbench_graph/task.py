"""Node classification on one graph, as a kdbench classification task.

Every batch carries the whole graph (``x``, ``edge_index``) and the node ids it asks
about (``nodes``) with their labels; a model reads ``(x, edge_index, nodes)`` and returns
rows for those nodes only, so a batch's outputs, labels and ``index`` line up exactly as
in any classification task and every classification method applies unchanged.
``index`` counts positions in the split (0 .. num_train - 1), as the core expects:
teacher outputs are cached by it and memory banks (CRD) are sized by it, so no bank row
stands for a node that is never trained on. Methods that read every node, labelled or
not (GLNN, LSP), ask for ``whole_graph()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from kdbench import Batch, ClassificationTask, Recipe

if TYPE_CHECKING:
    from torch_geometric.data import Data

Split = dict[str, torch.Tensor]


class NodeClassification(ClassificationTask):
    inputs = {"teacher": "graph", "student": "graph"}

    def __init__(self, graph: Data, split: Split, recipes: dict[str, Recipe],
                 redraw: Callable[[int], Split] | None = None) -> None:
        """``split`` maps 'train', 'val', 'test' to node ids; ``redraw(seed)``, when given,
        draws the split a run with that seed uses (see ``for_seed``)."""
        labelled = {name: (nodes, graph.y[nodes]) for name, nodes in split.items()}
        super().__init__(labelled, num_classes=int(graph.y.max()) + 1, recipes=recipes,
                         input_shape=(graph.num_features,), num_nodes=graph.num_nodes)
        self.graph = graph
        self.redraw = redraw

    def for_seed(self, seed: int) -> NodeClassification:
        """The same graph with the split of ``seed`` (a fixed view: it redraws no further)."""
        if self.redraw is None:
            return self
        return NodeClassification(self.graph, self.redraw(seed), self.recipes)

    def batches(self, split: str, recipe: Recipe | None,
                generator: torch.Generator | None) -> Iterator[Batch]:
        # The parent batches the split's (node id, label) pairs; its "x" is the node ids.
        for batch in super().batches(split, recipe, generator):
            yield {"x": self.graph.x, "edge_index": self.graph.edge_index, "nodes": batch["x"],
                   "y": batch["y"], "index": batch["index"]}

    def model_input(self, batch: Batch,
                    role: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return batch["x"], batch["edge_index"], batch["nodes"]

    def latency_input(self, role: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole graph: GLNN's comparison is the cost of labelling every node at once."""
        return self.graph.x, self.graph.edge_index

    def deployment_input(self, role: str, size: int) -> None:
        """None: a node classifier's call is the whole graph, not a batch of samples."""
        return None

    def whole_graph(self) -> Batch:
        """A batch over every node, labelled or not, row i being node i (no labels, no index)."""
        return {"x": self.graph.x, "edge_index": self.graph.edge_index,
                "nodes": torch.arange(self.graph.num_nodes)}
