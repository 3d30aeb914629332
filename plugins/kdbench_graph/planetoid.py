"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the canonical raw ``ind.*`` pickles.

The files are read by torch-geometric's own Planetoid reader straight from the data root:
the ``Planetoid`` dataset class would also write a ``processed/`` copy next to them, which
a read-only data root forbids and which saves nothing worth having (reading a raw graph
takes about 0.2 s). Each file's SHA-256 is checked first, so a missing or altered file is
named in a one-line error rather than surfacing as a pickle traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from kdbench import DatasetFile, DatasetSpec, Recipe, UserError
from kdbench_graph.splits import largest_component, per_class_split, public_split
from kdbench_graph.task import NodeClassification

if TYPE_CHECKING:
    from torch_geometric.data import Data

_COMMIT = "af6abf468a772cc055bec88c52e4d6f51b7c37e3"
_URL = f"https://raw.githubusercontent.com/kimiyoung/planetoid/{_COMMIT}/data/"
SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_SUMS = {
    "Cora": ("23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
             "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
             "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
             "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
             "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
             "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
             "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
             "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875"),
    "CiteSeer": ("d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
                 "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
                 "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
                 "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
                 "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
                 "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
                 "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
                 "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"),
    "PubMed": ("fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
               "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
               "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
               "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
               "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
               "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
               "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
               "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5"),
}
GRAPHS = tuple(_SUMS)
PLANETOID = DatasetSpec(
    "planetoid",
    tuple(DatasetFile(f"{name}/raw/ind.{name.lower()}.{suffix}", sha,
                      f"{_URL}ind.{name.lower()}.{suffix}")
          for name, sums in _SUMS.items() for suffix, sha in zip(SUFFIXES, sums, strict=True)),
    "Planetoid citation graphs Cora, CiteSeer, PubMed (Yang, Cohen & Salakhutdinov, ICML 2016), "
    "raw files of kimiyoung/planetoid@af6abf4",
    "MIT",
)
SPLITS = ("cpf", "public")
TRAIN_PER_CLASS, VAL_PER_CLASS = 20, 30
"""The CPF/GLNN protocol's labelled nodes per class; every other node is a test node."""


def load_graph(name: str) -> Data:
    """One Planetoid graph, every raw file checked against its published SHA-256 first."""
    paths = [PLANETOID.path(f"{name}/raw/ind.{name.lower()}.{suffix}") for suffix in SUFFIXES]
    from torch_geometric.io import read_planetoid_data  # seconds to import: only when a graph is read

    return read_planetoid_data(str(paths[0].parent), name)


def build_planetoid(name: str, split: str, split_seed: int | None = None) -> NodeClassification:
    """A Planetoid node-classification task under one of two protocols.

    ``cpf`` (Yang et al. 2021, used by GLNN): the largest connected component, 20 labelled
    training and 30 validation nodes per class, all others test nodes. With ``split_seed``
    unset the split is redrawn for every run seed (seed s draws split s), so a 10-seed
    result averages over splits as the papers do; an integer fixes one split for all seeds.
    ``public``: the whole graph and the fixed Planetoid split (Kipf & Welling's 140/500/1000
    for Cora).
    """
    if split not in SPLITS:
        raise UserError(f"{name.lower()}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split_seed is not None and (isinstance(split_seed, bool) or not isinstance(split_seed, int)):
        raise UserError(f"{name.lower()}: split_seed must be an integer or null, "
                        f"got {split_seed!r}")
    graph = load_graph(name)
    if split == "public":
        return NodeClassification(graph, public_split(graph), _recipes(int(graph.train_mask.sum())))
    graph = largest_component(graph)

    def draw(seed: int) -> dict[str, torch.Tensor]:
        return per_class_split(graph.y, {"train": TRAIN_PER_CLASS, "val": VAL_PER_CLASS}, seed)

    splits = draw(split_seed if split_seed is not None else 0)
    redraw = draw if split_seed is None else None
    return NodeClassification(graph, splits, _recipes(len(splits["train"])), redraw=redraw)


def _recipes(labelled: int) -> dict[str, Recipe]:
    """GLNN's optimiser for both roles: Adam, lr 0.01, weight decay 5e-4, constant rate, 200
    epochs (a suite picks the best-validation epoch); one step per epoch over every labelled
    training node, each a whole-graph forward."""
    recipe = Recipe(epochs=200, batch_size=labelled, optimizer="adam", lr=0.01, weight_decay=5e-4,
                    schedule="constant")
    return {"teacher": recipe, "student": recipe}
