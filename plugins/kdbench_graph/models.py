"""GraphSAGE and GCN teachers, a small GCN and a graph-free MLP student (GLNN's pair).

Every model is called as ``model(x, edge_index, nodes)`` and returns the rows of ``nodes``
(every node when ``nodes`` is None). Features are named per layer: ``stage1`` is the
hidden layer (after ReLU, before dropout), ``stage2`` the last layer's output (the logits
themselves, as these models have two layers), ``embedding`` the last hidden layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task


@dataclass(frozen=True)
class GraphModelSpec(ModelSpec):
    reads_edges: bool = True
    """Whether the model passes messages along edges; methods that compare neighbourhoods
    in the student's own embedding (LSP) need one that does."""


class NodeClassifier(nn.Module):
    """Layers in turn, ReLU and dropout between them; message passing or node-wise (MLP).

    A node-wise model's output for a node depends on that node's features alone, so it
    computes only the rows asked for and never touches ``edge_index`` (it may be None).
    """

    def __init__(self, layers: list[nn.Module], dropout: float, reads_edges: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.reads_edges = reads_edges

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None,
                nodes: torch.Tensor | None = None) -> ModelOutput:
        if not self.reads_edges and nodes is not None:
            x, nodes = x[nodes], None
        stages = []
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, edge_index) if self.reads_edges else layer(h)
            if i < len(self.layers) - 1:
                h = h.relu()
                stages.append(h)
                h = self.dropout(h)
        stages.append(h)

        def rows(t: torch.Tensor) -> torch.Tensor:
            return t if nodes is None else t[nodes]

        features = {f"stage{i}": rows(stage) for i, stage in enumerate(stages, start=1)}
        features["embedding"] = features[f"stage{len(stages) - 1}"]
        return ModelOutput(rows(h), features)


Layer = Callable[[int, int], nn.Module]


def _builder(layer: Layer, hidden: int, dropout: float,
             reads_edges: bool) -> Callable[[Task], nn.Module]:
    def build(task: Task) -> nn.Module:
        features, classes = task.info["input_shape"][0], task.info["num_classes"]
        layers = [layer(features, hidden), layer(hidden, classes)]
        return NodeClassifier(layers, dropout, reads_edges)

    return build


def _gcn(in_channels: int, out_channels: int) -> nn.Module:
    from torch_geometric.nn import GCNConv  # torch-geometric takes seconds to import: only when a model is built

    return GCNConv(in_channels, out_channels)


def _sage(in_channels: int, out_channels: int) -> nn.Module:
    from kdbench_graph.mean_sage import MeanSAGEConv

    return MeanSAGEConv(in_channels, out_channels)


def _spec(name: str, layer: Layer, hidden: int, dropout: float, description: str,
          reads_edges: bool = True) -> GraphModelSpec:
    return GraphModelSpec(name, _builder(layer, hidden, dropout, reads_edges), ("classification",),
                          ("graph",), description=description, reads_edges=reads_edges)


SAGE = _spec("sage", _sage, 128, 0.5,
             "GraphSAGE, 2 layers × 128, mean aggregation over the full neighbourhood, dropout 0.5")
GCN = _spec("gcn", _gcn, 64, 0.5, "GCN (Kipf & Welling), 2 layers × 64, dropout 0.5")
GCN_SMALL = _spec("gcn-small", _gcn, 16, 0.5, "GCN, 2 layers × 16, dropout 0.5")
MLP = _spec("mlp", nn.Linear, 128, 0.5,
            "MLP on node features alone, 2 layers × 128 (GLNN's student), dropout 0.5; "
            "reads no edges",
            reads_edges=False)
