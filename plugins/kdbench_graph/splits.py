"""Which nodes of a graph are labelled for training, which validate and which test.

A split is a dict of node-id tensors ('train', 'val', 'test'), sorted and disjoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from kdbench import UserError

if TYPE_CHECKING:
    from torch_geometric.data import Data


def largest_component(graph: Data) -> Data:
    """The subgraph of the largest connected component, nodes renumbered from 0.

    The CPF/GLNN protocol drops the small components: a node cut off from every labelled
    node gives a message-passing model nothing to propagate.
    """
    from torch_geometric.transforms import LargestConnectedComponents

    return LargestConnectedComponents()(graph)


def per_class_split(labels: torch.Tensor, per_class: dict[str, int],
                    seed: int) -> dict[str, torch.Tensor]:
    """``per_class[name]`` random nodes of every class for each named split, the rest in 'test'.

    Counts per class (not fractions) are the semi-supervised protocol: every class gets the
    same few labels however rare it is. Drawn with its own generator, so the split depends
    on ``seed`` alone and not on whatever consumed the global random state before.
    """
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in [*per_class, "test"]}
    needed = sum(per_class.values())
    for cls in labels.unique():
        members = (labels == cls).nonzero().flatten()
        if len(members) <= needed:
            raise UserError(f"class {int(cls)} has {len(members)} nodes; "
                            f"the split needs more than {needed}")
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for name, count in per_class.items():
            parts[name].append(members[start : start + count])
            start += count
        parts["test"].append(members[start:])
    return {name: torch.cat(chunks).sort().values for name, chunks in parts.items()}


def public_split(graph: Data) -> dict[str, torch.Tensor]:
    """The fixed split the Planetoid files define (train = the first labelled nodes, val = the
    next 500, test = the ids in ``test.index``), as torch-geometric reads it into masks."""
    return {name: getattr(graph, f"{name}_mask").nonzero().flatten()
            for name in ("train", "val", "test")}
