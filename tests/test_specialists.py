"""Hinton et al. 2015's specialists (section 5): clusters of confused classes, the dustbin, the ensemble's
q, and the whole scheme run on digits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from kdbench_methods.specialists import (
    Specialist,
    SpecialistEnsemble,
    Specialists,
    combine,
    confusable_classes,
    dustbin_offset,
    with_dustbin,
)
from mlflow.tracking import MlflowClient
from scipy.optimize import minimize
from scipy.special import softmax
from torch import nn

from kdbench import IncompatibleCombination, ModelSpec
from tests.conftest import write_suite
from tests.methods_fixtures import one_thread, tiny_task  # noqa: F401

BLOCKS = [[0, 1, 2], [5, 6]]
"""The planted confusions among ten classes; the other five are told apart."""


def test_clusters_are_the_planted_blocks_of_a_covariance_matrix() -> None:
    # variances that differ more than the covariances between classes do: grouping columns by their
    # size (what K-means on the columns does) would not find the blocks
    covariance = torch.full((10, 10), -0.010)
    for block in BLOCKS:
        covariance[np.ix_(block, block)] = 0.003
    covariance.diagonal().copy_(torch.linspace(0.05, 0.09, 10))
    assert confusable_classes(covariance, clusters=7) == BLOCKS
    assert confusable_classes(covariance, clusters=10) == []


def test_clusters_are_the_planted_blocks_of_a_classifier_that_confuses_them() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(200)
    logits = 6.0 * nn.functional.one_hot(labels, 10).float() + torch.randn(len(labels), 10, generator=generator)
    for block in BLOCKS:  # a class of a block gets its block's mass, shared at random among its classes
        inside = torch.isin(labels, torch.tensor(block))
        shared = 6.0 + 2 * torch.randn(int(inside.sum()), len(block), generator=generator)
        logits[np.ix_(inside.numpy(), block)] = shared
    probabilities = logits.softmax(-1)
    assert confusable_classes(torch.cov(probabilities.T), clusters=7) == BLOCKS


def test_the_dustbin_holds_the_probability_of_every_class_outside_the_subset() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [0.5, -1.0, 2.0, 0.0, -3.0]])
    subset, rest = torch.tensor([1, 3]), torch.tensor([0, 2, 4])
    read = with_dustbin(logits, subset, rest)
    assert torch.equal(read[:, :2], logits[:, [1, 3]])
    expected = [math.log(math.exp(1.0) + math.exp(3.0) + math.exp(5.0)),
                math.log(math.exp(0.5) + math.exp(2.0) + math.exp(-3.0))]
    assert read[:, 2].tolist() == pytest.approx(expected, abs=1e-6)
    probabilities, full = read.softmax(-1), logits.softmax(-1)
    assert probabilities.sum(-1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert torch.allclose(probabilities[:, :2], full[:, [1, 3]], atol=1e-6)
    assert torch.allclose(probabilities[:, 2], full[:, [0, 2, 4]].sum(-1), atol=1e-6)


def test_a_specialist_reads_its_network_as_subset_and_dustbin_and_corrects_its_prior() -> None:
    torch.manual_seed(0)
    network = nn.Linear(3, 5)
    specialist = Specialist(network, [3, 1], classes=5)
    assert specialist.labels.tolist() == [2, 0, 2, 1, 2]
    x = torch.randn(4, 3)
    assert torch.allclose(specialist(x).output, with_dustbin(network(x), torch.tensor([1, 3]), torch.tensor([0, 2, 4])))
    # trained on half subset, half rest, a specialist's odds are the true odds times (1 − share) / share;
    # the corrected output is the posterior under the true prior, by Bayes' rule
    share = 0.2
    specialist.offset[-1] = dustbin_offset(share)
    trained = with_dustbin(network(x), torch.tensor([1, 3]), torch.tensor([0, 2, 4])).softmax(-1)
    weights = torch.tensor([share, share, 1 - share])
    bayes = trained * weights / (trained * weights).sum(-1, keepdim=True)
    assert torch.allclose(specialist(x).output.softmax(-1), bayes, atol=1e-6)


def objective(z: np.ndarray, general: np.ndarray, experts: list[tuple[np.ndarray, list[int]]]) -> float:
    """KL(p_g ‖ q) + Σ_m KL(p_m ‖ q_m) for q = softmax(z), written again from the paper's eq. 5."""
    q = softmax(z)
    value = float(np.sum(general * np.log(general / q)))
    for p, subset in experts:
        merged = np.append(q[subset], 1 - q[subset].sum())
        value += float(np.sum(p * np.log(p / merged)))
    return value


def test_the_ensemble_q_minimises_the_papers_objective() -> None:
    general = np.array([[0.40, 0.30, 0.15, 0.10, 0.05], [0.05, 0.10, 0.50, 0.30, 0.05]])
    experts = [(np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]), [0, 1]),
               (np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1]]), [2, 3])]
    active = torch.tensor([[True, False], [True, True]])  # row 0 has one active specialist, row 1 two
    tensors = [(torch.tensor(p).log().float(), torch.tensor(subset), torch.tensor(sorted(set(range(5)) - set(subset))))
               for p, subset in experts]
    q = combine(torch.tensor(general).log().float(), tensors, active, steps=400).exp().double().numpy()
    for row in range(2):
        mine = [(p[row], subset) for (p, subset), on in zip(experts, active[row], strict=True) if on]
        solved = minimize(objective, np.log(general[row]), args=(general[row], mine), method="BFGS", tol=1e-12)
        assert softmax(solved.x) == pytest.approx(q[row], abs=1e-4)
        assert objective(np.log(q[row]), general[row], mine) < objective(np.log(general[row]), general[row], mine)
        gradient = torch.func.grad(lambda z, r=row, m=mine: torch_objective(z, general[r], m))(
            torch.tensor(np.log(q[row])))
        assert gradient.abs().max() < 1e-5


def torch_objective(z: torch.Tensor, general: np.ndarray, experts: list[tuple[np.ndarray, list[int]]]) -> torch.Tensor:
    """``objective`` in torch, for its gradient."""
    log_q = z.log_softmax(-1)
    value = (torch.tensor(general) * (torch.tensor(general).log() - log_q)).sum()
    for p, subset in experts:
        inside = log_q[subset]
        merged = torch.cat([inside, torch.log1p(-inside.exp().sum()).unsqueeze(0)])
        value = value + (torch.tensor(p) * (torch.tensor(p).log() - merged)).sum()
    return value


def test_without_an_active_specialist_the_ensemble_is_the_generalist() -> None:
    torch.manual_seed(0)
    generalist, expert = nn.Linear(4, 6), nn.Linear(4, 6)
    ensemble = SpecialistEnsemble(generalist, [Specialist(expert, [1, 2], classes=6)], top=1, steps=20).eval()
    x = torch.randn(200, 4)
    with torch.no_grad():
        general, combined = generalist(x).log_softmax(-1).numpy(), ensemble(x).output.numpy()
    active = np.isin(general.argmax(-1), [1, 2])
    assert 0 < active.sum() < len(x)
    assert np.array_equal(combined[~active], general[~active])
    assert np.abs(combined[active] - general[active]).max(-1).min() > 1e-3, "an active specialist moves q"
    wide = SpecialistEnsemble(generalist, list(ensemble.specialists), top=6, steps=20).eval()
    with torch.no_grad():
        assert np.abs(wide(x).output.numpy() - general).max(-1).min() > 1e-3, "top 6 of 6 classes: always active"


def test_the_method_refuses_nonsense_and_tasks_it_cannot_serve() -> None:
    Specialists.validate_params(dict(Specialists.defaults))
    for key, value in [("clusters", 1), ("top_n", 0), ("solver_steps", 0), ("specialist_epochs", 1.5),
                       ("T", 0.0), ("alpha", 2.0)]:
        with pytest.raises(ValueError, match=key):
            Specialists.validate_params({**Specialists.defaults, key: value})
    spec = ModelSpec("tiny", lambda task: nn.Linear(64, 4), kinds=("classification",))
    with pytest.raises(IncompatibleCombination, match="validation split"):
        Specialists.check(tiny_task(val=False), [spec], spec)


SUITE = """
name: specialists-tiny
seeds: 1
tasks: [digits]
pairs:
  - {teacher: hinton-mlp-1200, student: mlp-30}
methods:
  - {name: specialists, params: {clusters: 9, specialist_epochs: 1, solver_steps: 10}}
recipe:
  teacher: {epochs: 1, train_examples: 300}
  student: {epochs: 1}
"""


def test_the_scheme_runs_on_digits_and_publishes_its_clusters(cli, isolated: Path) -> None:
    code, out, _ = cli("run", write_suite(isolated / "specialists.yaml", SUITE))
    assert code == 0, out
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("specialists-tiny").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    student = next(r for r in runs if r.data.tags["kdbench.role"] != "teacher")
    text = Path(client.download_artifacts(student.info.run_id, "samples/clusters.txt", str(isolated))).read_text()
    lines = text.splitlines()
    # nine groups of ten classes: exactly one pair, so one specialist
    assert lines[0] == "9 clusters of the covariance of the generalist's validation predictions:"
    assert len(lines) == 3 and lines[1].startswith("specialist 1: ")
    pair = [int(c) for c in lines[1].removeprefix("specialist 1: ").split(", ")]
    assert len(pair) == 2 and pair == sorted(pair) and set(pair) <= set(range(10))
    assert lines[2].startswith("validation accuracy: generalist ") and ", ensemble " in lines[2]
    assert "specialist1_val_accuracy" in student.data.metrics and "val_accuracy" in student.data.metrics
