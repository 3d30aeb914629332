"""The graph plugin: Planetoid files and splits, node models, GLNN and LSP against hand formulas."""

from __future__ import annotations

import math
import shutil
import stat
from pathlib import Path

import pytest
import torch
from kdbench_graph.glnn import GLNN
from kdbench_graph.lsp import LSP, lsp_divergence
from kdbench_graph.models import GCN, GCN_SMALL, MLP, SAGE
from kdbench_graph.planetoid import PLANETOID, SUFFIXES, build_planetoid
from kdbench_graph.task import NodeClassification
from torch_geometric.data import Data

from kdbench import IncompatibleCombination, ModelOutput, Recipe, Teacher, call_model
from kdbench.errors import DatasetMissingError
from tests.conftest import REPO

CORA = [f"Cora/raw/ind.cora.{suffix}" for suffix in SUFFIXES]


def toy_task() -> NodeClassification:
    """Five nodes on a path 0-1-2-3-4 (both directions), three features, two classes."""
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 1.0],
                      [1.0, 1.0, 1.0]])
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]])
    graph = Data(x=x, edge_index=edge_index, y=torch.tensor([0, 1, 0, 1, 0]))
    split = {"train": torch.tensor([0, 3]), "val": torch.tensor([1]), "test": torch.tensor([2, 4])}
    recipe = Recipe(epochs=1, batch_size=2, optimizer="adam", lr=0.01, schedule="constant")
    return NodeClassification(graph, split, {"teacher": recipe, "student": recipe})


# ----------------------------------------------------------------------------------------
# data and splits
# ----------------------------------------------------------------------------------------


def test_cpf_split_counts_per_class_and_the_largest_component(require_data):
    require_data("planetoid", *CORA)
    task = build_planetoid("Cora", "cpf")
    assert task.info["num_nodes"] == 2485  # Cora's largest connected component
    classes = task.info["num_classes"]
    for seed in (0, 1):
        view = task.for_seed(seed)
        nodes = {name: view.splits[name][0] for name in ("train", "val", "test")}
        assert torch.bincount(view.splits["train"][1], minlength=classes).tolist() == [20] * classes
        assert torch.bincount(view.splits["val"][1], minlength=classes).tolist() == [30] * classes
        every = torch.cat(list(nodes.values()))
        assert len(every) == len(every.unique()) == 2485  # disjoint, and they cover the graph
        assert torch.equal(view.splits["train"][1], task.graph.y[nodes["train"]])
    first, second, again = task.for_seed(0), task.for_seed(1), task.for_seed(1)
    assert not torch.equal(first.splits["train"][0], second.splits["train"][0])  # redrawn per seed
    assert torch.equal(second.splits["train"][0], again.splits["train"][0])  # and reproducible
    fixed = build_planetoid("Cora", "cpf", split_seed=1)
    assert fixed.for_seed(5) is fixed
    assert torch.equal(fixed.splits["val"][0], second.splits["val"][0])


def test_public_split_is_planetoids(require_data):
    require_data("planetoid", *CORA)
    task = build_planetoid("Cora", "public")
    assert task.graph.num_nodes == 2708
    assert [len(task.splits[s][1]) for s in ("train", "val", "test")] == [140, 500, 1000]
    assert task.for_seed(3) is task


def test_each_run_seed_gets_its_own_split_through_the_plan(require_data, isolated: Path):
    from kdbench.plan import expand, task_instances
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    require_data("planetoid", *CORA)
    path = isolated / "s.yaml"
    path.write_text("name: s\nseeds: 2\ntasks: [cora]\npairs: [{teacher: sage, student: mlp}]\n"
                    "methods: [kd]\n")
    registry = Registry.load()
    suite = load_suite(path, registry)
    combinations = expand(suite, registry, task_instances(suite, registry))
    by_seed = {}
    for combination in combinations:
        by_seed.setdefault(combination.seed, []).append(combination.task.splits["train"][0])
    assert not torch.equal(by_seed[0][0], by_seed[1][0])
    for splits in by_seed.values():  # a seed's teacher and its students share one split
        assert all(torch.equal(splits[0], other) for other in splits[1:])


def test_loads_from_a_read_only_data_root_and_writes_nothing_there(require_data, tmp_path,
                                                                   monkeypatch):
    source = require_data("planetoid", *CORA)
    root = tmp_path / "data"
    shutil.copytree(source / "Cora", root / "planetoid" / "Cora")

    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in root.rglob("*")}

    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot()
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    try:
        task = build_planetoid("Cora", "cpf")
        assert task.graph.num_nodes == 2485
        assert snapshot() == before  # root ignores mode bits: compare, don't trust them
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_missing_or_corrupt_file_is_one_line_naming_it(require_data, tmp_path, monkeypatch, cli):
    source = require_data("planetoid", *CORA)
    root = tmp_path / "data"
    shutil.copytree(source / "Cora", root / "planetoid" / "Cora")
    monkeypatch.setenv("KDBENCH_DATA", str(root))
    graph_file = root / "planetoid" / "Cora" / "raw" / "ind.cora.graph"
    graph_file.write_bytes(graph_file.read_bytes() + b"\0")
    with pytest.raises(DatasetMissingError, match=r"ind\.cora\.graph is corrupt"):
        build_planetoid("Cora", "cpf")
    graph_file.unlink()
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [cora]\npairs: [{teacher: sage, student: mlp}]\n"
                     "methods: [kd]\n")
    code, out, err = cli("run", suite)
    assert code == 2 and err.count("\n") == 1
    assert "Cora/raw/ind.cora.graph not found" in err and "kdbench data fetch planetoid" in err


def test_pubmed_is_registered_and_names_its_missing_file(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("KDBENCH_DATA", str(tmp_path / "empty"))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [pubmed]\npairs: [{teacher: gcn, student: mlp}]\n"
                     "methods: [glnn]\n")
    code, out, err = cli("run", suite)
    assert code == 2 and err.count("\n") == 1 and "PubMed/raw/ind.pubmed.x not found" in err
    assert len([f for f in PLANETOID.files if f.path.startswith("PubMed/")]) == 8


# ----------------------------------------------------------------------------------------
# models and the task's batches
# ----------------------------------------------------------------------------------------


def test_mlp_student_needs_no_edges_and_gnns_do_read_them():
    task = toy_task()
    x, edges = task.graph.x, task.graph.edge_index
    other = torch.tensor([[0, 4, 1, 3], [4, 0, 3, 1]])
    nodes = torch.tensor([4, 1])
    torch.manual_seed(0)
    mlp = MLP.build(task).eval()
    reference = mlp(x, edges, nodes)
    for output in (mlp(x, None, nodes), mlp(x, other, nodes)):
        assert torch.equal(output.output, reference.output)
    assert torch.allclose(mlp(x).output[nodes], reference.output)  # rows of the whole graph
    assert set(reference.features) == {"stage1", "stage2", "embedding"}
    assert reference.features["embedding"].shape == (2, 128)
    for spec in (SAGE, GCN, GCN_SMALL):
        gnn = spec.build(task).eval()
        assert not torch.allclose(gnn(x, edges, nodes).output, gnn(x, other, nodes).output)


def test_batches_line_up_with_index_and_teacher_outputs_cache_by_it():
    task = toy_task()
    batch = next(task.batches("train", task.recipe("teacher"), torch.Generator().manual_seed(0)))
    assert sorted(batch["nodes"].tolist()) == [0, 3]
    assert torch.equal(batch["y"], task.graph.y[batch["nodes"]])
    assert torch.equal(task.splits["train"][0][batch["index"]], batch["nodes"])  # split positions
    teacher = SAGE.build(task)
    cached = Teacher(task, teacher, method="kd", needs="logits", cached=True)
    direct = call_model(teacher, task.model_input(batch, "teacher")).output
    assert torch.allclose(cached.outputs(batch).output, direct)
    assert task.latency_input("student")[0].shape == (5, 3)  # the whole graph


# ----------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------


def test_glnn_loss_by_hand():
    task = toy_task()
    student = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [2.0, -2.0], [0.0, 0.0], [-1.0, 1.0], [3.0, 1.0]])
    batch = {"nodes": torch.tensor([0, 3]), "y": torch.tensor([0, 1])}
    method = GLNN(task, [], lamb=0.3)
    terms = method.loss(batch, ModelOutput(student, {}), [ModelOutput(teacher, {})])

    def probabilities(row: list[float]) -> list[float]:
        total = sum(math.exp(v) for v in row)
        return [math.exp(v) / total for v in row]

    labelled = ((0, 0), (3, 1))  # (node, label)
    cross_entropy = -sum(math.log(probabilities(student[n].tolist())[c]) for n, c in labelled) / 2
    kl = 0.0
    for i in range(5):
        p_t, p_s = probabilities(teacher[i].tolist()), probabilities(student[i].tolist())
        kl += sum(t * math.log(t / s) for t, s in zip(p_t, p_s, strict=True)) / 5
    assert terms["task"].item() == pytest.approx(0.3 * cross_entropy, rel=1e-5)
    assert terms["glnn"].item() == pytest.approx(0.7 * kl, rel=1e-5)


def test_lsp_loss_on_a_hand_built_graph():
    # 0-1, 1-2, 2-3, 0-2 both ways: node 3 has one neighbour, so its distribution is certain
    edges = [(0, 1), (1, 2), (2, 3), (0, 2)]
    edge_index = torch.tensor([[a for a, b in edges] + [b for a, b in edges],
                               [b for a, b in edges] + [a for a, b in edges]])
    student = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [-1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    scale = 2.0

    def neighbour_distribution(z: torch.Tensor, i: int) -> dict[int, float]:
        neighbours = [a for a, b in edges if b == i] + [b for a, b in edges if a == i]
        weight = {j: math.exp(math.exp(-sum(abs(p - q) for p, q in zip(z[i].tolist(), z[j].tolist(),
                                                                       strict=True)) / scale))
                  for j in neighbours}
        total = sum(weight.values())
        return {j: w / total for j, w in weight.items()}

    expected = 0.0
    for i in range(4):
        p_t, p_s = neighbour_distribution(teacher, i), neighbour_distribution(student, i)
        expected += sum(p_t[j] * math.log(p_t[j] / p_s[j]) for j in p_t)
    expected /= 4
    assert expected > 1e-4
    loss = lsp_divergence(student, teacher, edge_index, scale)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    shifted = lsp_divergence(teacher, teacher + 5.0, edge_index, scale)  # L1 distances unchanged
    assert shifted.item() == pytest.approx(0.0, abs=1e-7)


def test_lsp_skips_mlp_students_and_graph_methods_skip_other_tasks():
    task = toy_task()
    with pytest.raises(IncompatibleCombination, match="mlp reads no edges"):
        LSP.check(task, [SAGE], MLP)
    LSP.check(task, [GCN], GCN_SMALL)
    GLNN.check(task, [SAGE], MLP)
    from kdbench_vision.digits import build_digits

    with pytest.raises(IncompatibleCombination, match="not node classification"):
        GLNN.check(build_digits(), [SAGE], MLP)


def test_spatial_feature_methods_end_as_na_not_failed(require_data, isolated: Path, cli):
    """at needs spatial maps; node embeddings are vectors, which only setup can see."""
    from mlflow.tracking import MlflowClient

    require_data("planetoid", *CORA)
    suite = isolated / "s.yaml"
    suite.write_text("name: s\ntasks: [cora]\npairs: [{teacher: sage, student: gcn-small}]\n"
                     "methods: [at, lsp, glnn]\n"
                     "recipe: {teacher: {epochs: 1}, student: {epochs: 1}}\n")
    code, out, err = cli("run", suite)
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    skipped = {r.data.tags["kdbench.method"]: r.data.tags.get("kdbench.skipped") for r in runs}
    assert "no spatial feature map" in skipped["at"]
    assert skipped["lsp"] is None and skipped["glnn"] is None
    assert all(r.info.status == "FINISHED" for r in runs)


def test_graph_suite_validates():
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    registry = Registry.load()
    for name in ("graph-planetoid.yaml", "smoke.yaml"):
        load_suite(REPO / "suites" / name, registry)
