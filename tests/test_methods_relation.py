"""Relation-based methods (rkd, sp, cc, crd, crd-infonce) against explicit loops, and the invariances
that define them: RKD's to scale, SP's to the batch order, CRD's memory bank and momentum update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kdbench_methods.cc import CC
from kdbench_methods.crd import CRD, CRDInfoNCE
from kdbench_methods.rkd import RKD
from kdbench_methods.sp import SP

from kdbench import ModelOutput
from tests.methods_fixtures import check_loss_trains, one_thread, tiny_task  # noqa: F401

LABELS = torch.tensor([0, 1, 2, 3, 0])
BATCH = {"x": None, "y": LABELS, "index": torch.tensor([3, 7, 11, 20, 42])}


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def np64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def out(name: str, value: torch.Tensor) -> ModelOutput:
    return ModelOutput(randn(len(value), 4, seed=99), {name: value})


def terms_of(method_class, s: torch.Tensor, t: torch.Tensor, name: str = "embedding", **params):
    method = method_class(tiny_task(), [], **params)
    method.setup(out(name, s), [out(name, t)])
    return method, method.loss(BATCH, out(name, s), [out(name, t)])


def huber(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(np.where(d < 1, 0.5 * d**2, d - 0.5).mean())


# --- rkd ----------------------------------------------------------------------------------

def numpy_distances(e: np.ndarray) -> np.ndarray:
    n = len(e)
    d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
    return d / d[~np.eye(n, dtype=bool)].mean()


def numpy_angles(e: np.ndarray) -> np.ndarray:
    """cos of the angle at e_j between e_i and e_k, for every (j, i, k); 0 where a side is empty."""
    n = len(e)
    cos = np.zeros((n, n, n))
    for j in range(n):
        for i in range(n):
            for k in range(n):
                u, v = e[i] - e[j], e[k] - e[j]
                if np.linalg.norm(u) > 0 and np.linalg.norm(v) > 0:
                    cos[j, i, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return cos


def test_rkd_distance_and_angle_terms_match_explicit_loops():
    s, t = randn(5, 3, seed=1), randn(5, 6, seed=2)
    _, terms = terms_of(RKD, s, t)
    distance = huber(numpy_distances(np64(s)), numpy_distances(np64(t)))
    angle = huber(numpy_angles(np64(s)), numpy_angles(np64(t)))
    assert terms["distance"].item() == pytest.approx(25.0 * distance, rel=1e-4)
    assert terms["angle"].item() == pytest.approx(50.0 * angle, rel=1e-4)


def test_rkd_distance_loss_ignores_a_common_scaling_of_both_embeddings():
    s, t = randn(5, 3, seed=3), randn(5, 6, seed=4)
    _, plain = terms_of(RKD, s, t)
    _, scaled = terms_of(RKD, 7.5 * s, 7.5 * t)
    assert plain["distance"].item() > 0
    assert scaled["distance"].item() == pytest.approx(plain["distance"].item(), rel=1e-4)
    assert scaled["angle"].item() == pytest.approx(plain["angle"].item(), rel=1e-4)


# --- sp -----------------------------------------------------------------------------------

def numpy_sp(s: np.ndarray, t: np.ndarray) -> float:
    def g(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(len(a), -1)
        gram = flat @ flat.T
        return gram / np.linalg.norm(gram, axis=1, keepdims=True)

    return float(((g(t) - g(s)) ** 2).sum() / len(s) ** 2)


def test_sp_is_squared_frobenius_distance_of_row_normalised_similarities():
    s, t = randn(5, 3, 2, 2, seed=5), randn(5, 8, 4, 4, seed=6)
    _, terms = terms_of(SP, s, t, name="stage3")
    assert terms["sp"].item() == pytest.approx(3000.0 * numpy_sp(np64(s), np64(t)), rel=1e-4)


def test_sp_is_invariant_to_the_batch_order_but_not_to_shuffling_one_side():
    s, t = randn(5, 3, 2, 2, seed=7), randn(5, 8, 4, 4, seed=8)
    order = torch.tensor([3, 0, 4, 1, 2])
    _, plain = terms_of(SP, s, t, name="stage3")
    _, permuted = terms_of(SP, s[order], t[order], name="stage3")
    _, mismatched = terms_of(SP, s[order], t, name="stage3")
    assert permuted["sp"].item() == pytest.approx(plain["sp"].item(), rel=1e-5)
    assert mismatched["sp"].item() != pytest.approx(plain["sp"].item(), rel=1e-2)


# --- cc -----------------------------------------------------------------------------------

def test_cc_matches_the_taylor_expanded_rbf_correlation_of_the_projected_student():
    s, t = randn(5, 3, seed=9), randn(5, 6, seed=10)
    method, terms = terms_of(CC, s, t, gamma=0.4, order=2, weight=1.0)
    projected = np64(s) @ np64(method.projection.weight).T + np64(method.projection.bias)

    def corr(e: np.ndarray) -> np.ndarray:
        unit = e / np.linalg.norm(e, axis=1, keepdims=True)
        c = unit @ unit.T
        return math.exp(-0.8) * (1 + 0.8 * c + 0.8**2 / 2 * c**2)

    expected = ((corr(projected) - corr(np64(t))) ** 2).mean()
    assert terms["cc"].item() == pytest.approx(expected, rel=1e-4)


def test_cc_kernel_tends_to_the_gaussian_rbf_as_the_order_grows():
    from kdbench_methods.cc import correlation

    e = randn(5, 4, seed=11)
    unit = F.normalize(e, dim=1)
    rbf = torch.exp(-0.4 * torch.cdist(unit, unit) ** 2)
    torch.testing.assert_close(correlation(e, 0.4, 12), rbf, rtol=1e-5, atol=1e-6)


# --- crd ----------------------------------------------------------------------------------

def crd_method(s: torch.Tensor, t: torch.Tensor, method_class=CRD, **params) -> CRD:
    method = method_class(tiny_task(n=64), [], **params)
    method.setup(out("embedding", s), [out("embedding", t)])
    return method


def test_crd_infonce_banks_hold_one_unit_vector_per_training_sample():
    method = crd_method(randn(5, 3), randn(5, 6), CRDInfoNCE, dim=16)
    for bank in (method.bank_student, method.bank_teacher):
        assert bank.shape == (64, 16)
        torch.testing.assert_close(bank.norm(dim=1), torch.ones(64))


def test_crd_against_an_uninformative_bank_is_the_nce_of_chance():
    # Every bank vector and every embedding equal: every score is the mean, so P = 1/N for the
    # positive and each of the K negatives; D(pos) = 1/(K + 1) and D(neg) = K/(K + 1).
    # K = 16384 stays as set (drawn with replacement from the ~48 other-class samples).
    s, t = randn(5, 3, seed=12), randn(5, 6, seed=13)
    method = crd_method(s, t)
    unit = F.normalize(torch.ones(128), dim=0)
    method.bank_student[:] = unit
    method.bank_teacher[:] = unit
    with torch.no_grad():
        for head in (method.embed_student, method.embed_teacher):
            head.weight.zero_()
            head.bias.fill_(1.0)
    terms = method.loss(BATCH, out("embedding", s), [out("embedding", t)])
    k = 16384
    chance = math.log(k + 1) - k * math.log(k / (k + 1))
    assert terms["crd"].item() == pytest.approx(0.8 * 2 * chance, rel=1e-5)


def test_crd_infonce_against_an_uninformative_bank_is_log_of_the_candidate_count():
    # Every bank vector equal: the positive scores like each negative, whatever the
    # embeddings, so each side's InfoNCE is log(K + 1); K = min(16384, num_train − 1) = 63.
    s, t = randn(5, 3, seed=12), randn(5, 6, seed=13)
    method = crd_method(s, t, CRDInfoNCE)
    unit = F.normalize(torch.ones(128), dim=0)
    method.bank_student[:] = unit
    method.bank_teacher[:] = unit
    terms = method.loss(BATCH, out("embedding", s), [out("embedding", t)])
    assert terms["crd"].item() == pytest.approx(0.8 * 2 * math.log(64), rel=1e-5)


def test_crd_infonce_is_infonce_of_each_anchor_against_its_bank_positive_and_the_drawn_negatives():
    s, t = randn(5, 3, seed=14), randn(5, 6, seed=15)
    method = crd_method(s, t, CRDInfoNCE, negatives=10, nce_t=0.5, weight=1.0)
    bank_s, bank_t = np64(method.bank_student), np64(method.bank_teacher)
    with torch.no_grad():
        v_s = np64(F.normalize(method.embed_student(s), dim=1))
        v_t = np64(F.normalize(method.embed_teacher(t), dim=1))
    torch.manual_seed(123)
    negatives = torch.randint(0, 64, (10,)).numpy()  # the draw the loss makes next

    def info_nce(anchors: np.ndarray, bank: np.ndarray) -> float:
        total = 0.0
        for anchor, index in zip(anchors, BATCH["index"].numpy(), strict=True):
            positive = np.exp(anchor @ bank[index] / 0.5)
            others = sum(np.exp(anchor @ bank[n] / 0.5) for n in negatives)
            total -= np.log(positive / (positive + others))
        return total / len(anchors)

    expected = info_nce(v_s, bank_t) + info_nce(v_t, bank_s)
    torch.manual_seed(123)
    terms = method.loss(BATCH, out("embedding", s), [out("embedding", t)])
    assert terms["crd"].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("method_class", [CRD, CRDInfoNCE])
def test_crd_updates_the_banks_with_momentum_at_the_batch_indices_only(method_class):
    s, t = randn(5, 3, seed=16), randn(5, 6, seed=17)
    method = crd_method(s, t, method_class, momentum=0.25)
    before = method.bank_student.clone()
    with torch.no_grad():
        fresh = F.normalize(method.embed_student(s), dim=1)
    method.loss(BATCH, out("embedding", s), [out("embedding", t)])
    index = BATCH["index"]
    expected = F.normalize(0.25 * before[index] + 0.75 * fresh, dim=1)
    torch.testing.assert_close(method.bank_student[index], expected)
    untouched = torch.ones(64, dtype=torch.bool)
    untouched[index] = False
    torch.testing.assert_close(method.bank_student[untouched], before[untouched])


# --- all of them --------------------------------------------------------------------------

@pytest.mark.parametrize("method_class", [RKD, SP, CC, CRD, CRDInfoNCE])
def test_loss_is_finite_and_reaches_student_and_method_parameters(method_class):
    check_loss_trains(method_class)


@pytest.mark.parametrize("method_class, bad", [
    (RKD, {"angle_weight": -50.0}), (SP, {"gamma": -1.0}), (CC, {"gamma": 0.0}), (CC, {"order": 0}),
    (CRD, {"nce_t": 0.0}), (CRD, {"momentum": 1.0}), (CRD, {"negatives": 0}), (CRD, {"dim": 0}),
])
def test_nonsense_parameters_are_refused(method_class, bad):
    with pytest.raises(ValueError):
        method_class.validate_params({**method_class.defaults, **bad})
