"""Response-based methods (kd-reverse, dkd, dist, ls-kd, multi-teacher) against explicit numpy
formulas, the KD = TCKD + (1 − p_t)·NCKD identity, and their defining invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kdbench_methods.dist import DIST
from kdbench_methods.dkd import DKD, decoupled_kd
from kdbench_methods.kd import KD
from kdbench_methods.kd_reverse import ReverseKD
from kdbench_methods.ls_kd import LSKD
from kdbench_methods.multi_teacher import MultiTeacher
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, Teacher, soft_target_loss
from tests.methods_fixtures import CLASSES, check_loss_trains, one_thread, tiny_task  # noqa: F401


def logits(rows: int = 6, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(rows, CLASSES, generator=torch.Generator().manual_seed(seed))


def np64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.double().numpy()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * np.log(p / q)).sum(1)


def batch_for(labels: torch.Tensor) -> dict:
    return {"x": None, "y": labels, "index": torch.arange(len(labels))}


def run(method_class, student, teacher, labels, **params):
    outs = teacher if isinstance(teacher, list) else [ModelOutput(teacher, {})]
    task = tiny_task()
    handles = [Teacher(task, nn.Identity(), method=method_class.name, needs=method_class.needs, cached=False)]
    method = method_class(task, handles * len(outs), **params)
    return method.loss(batch_for(labels), ModelOutput(student, {}), outs)


LABELS = torch.tensor([0, 1, 2, 3, 1, 2])


# --- kd-reverse ---------------------------------------------------------------------------

def test_reverse_kd_is_kl_student_to_teacher_times_t_squared():
    s, t, temperature = logits(seed=1), logits(seed=2), 3.0
    q, p = softmax(np64(s) / temperature), softmax(np64(t) / temperature)
    expected = temperature**2 * kl_rows(q, p).mean()
    terms = run(ReverseKD, s, t, LABELS, T=temperature, alpha=1.0)
    assert terms["kd"].item() == pytest.approx(expected, rel=1e-5)


def test_reverse_equals_forward_kd_only_when_the_distributions_agree():
    s, t = logits(seed=3), logits(seed=4)
    same_forward = run(KD, t.clone(), t, LABELS)["kd"].item()
    same_reverse = run(ReverseKD, t.clone(), t, LABELS)["kd"].item()
    assert same_forward == pytest.approx(0.0, abs=1e-6)
    assert same_reverse == pytest.approx(0.0, abs=1e-6)
    forward, reverse = run(KD, s, t, LABELS)["kd"].item(), run(ReverseKD, s, t, LABELS)["kd"].item()
    assert forward > 0 and reverse > 0
    assert abs(forward - reverse) > 1e-3 * forward


# --- dkd ----------------------------------------------------------------------------------

def numpy_dkd(s: np.ndarray, t: np.ndarray, y: np.ndarray,
              temperature: float) -> tuple[float, float]:
    """TCKD and NCKD written out sample by sample, class by class."""
    p_s, p_t = softmax(s / temperature), softmax(t / temperature)
    tckd = nckd = 0.0
    for i, target in enumerate(y):
        b_s = np.array([p_s[i, target], 1 - p_s[i, target]])
        b_t = np.array([p_t[i, target], 1 - p_t[i, target]])
        tckd += (b_t * np.log(b_t / b_s)).sum()
        others = [c for c in range(s.shape[1]) if c != target]
        q_s = p_s[i, others] / p_s[i, others].sum()
        q_t = p_t[i, others] / p_t[i, others].sum()
        nckd += (q_t * np.log(q_t / q_s)).sum()
    return temperature**2 * tckd / len(y), temperature**2 * nckd / len(y)


def test_tckd_and_nckd_match_explicit_formulas():
    s, t = logits(seed=5), logits(seed=6)
    tckd, nckd = decoupled_kd(s, t, LABELS, 4.0)
    expected_tckd, expected_nckd = numpy_dkd(np64(s), np64(t), LABELS.numpy(), 4.0)
    assert tckd.item() == pytest.approx(expected_tckd, rel=1e-4)
    assert nckd.item() == pytest.approx(expected_nckd, rel=1e-4)


def test_kd_decomposes_into_tckd_plus_one_minus_pt_times_nckd():
    # Zhao et al. 2022, Eq. (3): KD = TCKD + (1 − p_t)·NCKD, sample by sample. Left side: Hinton
    # KD; right side: the terms DKD reports with α = β = 1 and no warm-up, so DKD itself
    # exceeds KD by exactly p_t·NCKD.
    s, t, temperature = logits(seed=7), logits(seed=8), 4.0
    for i in range(len(LABELS)):
        row_s, row_t, row_y = s[i:i + 1], t[i:i + 1], LABELS[i:i + 1]
        kd = soft_target_loss(row_s, row_t, temperature)
        terms = run(DKD, row_s, row_t, row_y, alpha=1.0, beta=1.0, T=temperature, warmup=0.0)
        p_target = torch.softmax(row_t / temperature, 1)[0, row_y[0]]
        decomposed = terms["tckd"] + (1 - p_target) * terms["nckd"]
        assert kd.item() == pytest.approx(decomposed.item(), rel=1e-4)
        assert (terms["tckd"] + terms["nckd"] - kd).item() == pytest.approx(
            (p_target * terms["nckd"]).item(), rel=1e-3, abs=1e-7)


def test_dkd_weights_its_terms_with_alpha_beta_and_adds_cross_entropy():
    s, t = logits(seed=9), logits(seed=10)
    terms = run(DKD, s, t, LABELS, alpha=0.5, beta=8.0, T=2.0, warmup=0.0)
    tckd, nckd = numpy_dkd(np64(s), np64(t), LABELS.numpy(), 2.0)
    ce = -np.log(softmax(np64(s))[np.arange(6), LABELS.numpy()]).mean()
    assert terms["tckd"].item() == pytest.approx(0.5 * tckd, rel=1e-4)
    assert terms["nckd"].item() == pytest.approx(8.0 * nckd, rel=1e-4)
    assert terms["task"].item() == pytest.approx(ce, rel=1e-5)


def test_dkd_warm_up_scales_with_the_run_length():
    method = DKD(tiny_task(), [], warmup=0.25)
    method.epochs = 8  # a quarter of 8 epochs: the ramp reaches 1 at epoch 2
    ramps = []
    for epoch in (1, 2, 5):
        method.epoch = epoch
        ramps.append(method.ramp())
    assert ramps == [0.5, 1.0, 1.0]
    method.epochs = 240  # the paper's run: 20 of 240 epochs at the default share
    method.epoch = 1
    assert DKD(tiny_task(), []).warmup * method.epochs == pytest.approx(20.0)
    off = DKD(tiny_task(), [], warmup=0.0)
    off.epochs, off.epoch = 8, 1
    assert off.ramp() == 1.0


def test_dkd_terms_follow_the_ramp():
    s, t = logits(seed=11), logits(seed=12)
    method = DKD(tiny_task(), [], warmup=0.5)
    method.epochs = 4
    halves = {}
    for epoch in (1, 2):
        method.epoch = epoch
        halves[epoch] = method.loss(batch_for(LABELS), ModelOutput(s, {}), [ModelOutput(t, {})])
    for term in ("tckd", "nckd"):
        assert halves[1][term].item() == pytest.approx(0.5 * halves[2][term].item(), rel=1e-6)
    assert halves[1]["task"].item() == pytest.approx(halves[2]["task"].item(), rel=1e-6)


# --- dist ---------------------------------------------------------------------------------

def test_dist_is_one_minus_pearson_between_and_within_classes():
    s, t, tau = logits(seed=13), logits(seed=14), 2.0
    p_s, p_t = softmax(np64(s) / tau), softmax(np64(t) / tau)
    inter = 1 - np.mean([np.corrcoef(p_s[i], p_t[i])[0, 1] for i in range(len(p_s))])
    intra = 1 - np.mean([np.corrcoef(p_s[:, c], p_t[:, c])[0, 1] for c in range(CLASSES)])
    terms = run(DIST, s, t, LABELS, beta=1.0, gamma=3.0, tau=tau)
    assert terms["inter"].item() == pytest.approx(tau**2 * inter, rel=1e-4)
    assert terms["intra"].item() == pytest.approx(3.0 * tau**2 * intra, rel=1e-4)


def test_dist_is_zero_when_the_student_ranks_like_the_teacher():
    t = logits(seed=15)
    terms = run(DIST, t.clone(), t, LABELS)
    assert terms["inter"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["intra"].item() == pytest.approx(0.0, abs=1e-6)


# --- ls-kd --------------------------------------------------------------------------------

def test_ls_kd_is_kd_on_z_scored_logits():
    s, t, temperature = logits(seed=16), logits(seed=17), 2.0

    def z(a: np.ndarray) -> np.ndarray:
        return (a - a.mean(1, keepdims=True)) / (a.std(1, ddof=1, keepdims=True) + 1e-7)

    p_t = softmax(z(np64(t)) / temperature)
    p_s = softmax(z(np64(s)) / temperature)
    expected = 9.0 * temperature**2 * kl_rows(p_t, p_s).mean()
    terms = run(LSKD, s, t, LABELS)
    assert terms["kd"].item() == pytest.approx(expected, rel=1e-4)


def test_ls_kd_ignores_the_students_logit_scale_and_shift_plain_kd_does_not():
    s, t = logits(seed=18), logits(seed=19)
    rescaled = 3.7 * s + torch.arange(6.0)[:, None]
    standardised = run(LSKD, s, t, LABELS)["kd"].item()
    assert run(LSKD, rescaled, t, LABELS)["kd"].item() == pytest.approx(standardised, rel=1e-4)
    plain = run(KD, s, t, LABELS)["kd"].item()
    assert run(KD, rescaled, t, LABELS)["kd"].item() != pytest.approx(plain, rel=1e-2)


# --- multi-teacher ------------------------------------------------------------------------

def test_multi_teacher_distils_the_weighted_mean_of_teacher_probabilities():
    s, t1, t2, temperature = logits(seed=20), logits(seed=21), logits(seed=22), 4.0
    ensemble = (1 * softmax(np64(t1) / temperature) + 3 * softmax(np64(t2) / temperature)) / 4
    expected = 0.9 * temperature**2 * kl_rows(ensemble, softmax(np64(s) / temperature)).mean()
    teachers = [ModelOutput(t1, {}), ModelOutput(t2, {})]
    terms = run(MultiTeacher, s, teachers, LABELS, weights=[1.0, 3.0])
    assert terms["kd"].item() == pytest.approx(expected, rel=1e-4)


def test_one_teacher_or_a_zero_weight_reduces_to_kd():
    s, t1, t2 = logits(seed=23), logits(seed=24), logits(seed=25)
    kd = run(KD, s, t1, LABELS)
    alone = run(MultiTeacher, s, [ModelOutput(t1, {})], LABELS)
    both = [ModelOutput(t1, {}), ModelOutput(t2, {})]
    masked = run(MultiTeacher, s, both, LABELS, weights=[2.0, 0.0])
    for terms in (alone, masked):
        assert terms["kd"].item() == pytest.approx(kd["kd"].item(), rel=1e-5)
        assert terms["task"].item() == pytest.approx(kd["task"].item(), rel=1e-6)


def test_multi_teacher_refuses_a_weight_per_teacher_mismatch():
    with pytest.raises(IncompatibleCombination, match="weights"):
        task = tiny_task()
        MultiTeacher(task, [Teacher(task, nn.Identity(), method="multi-teacher", needs="logits", cached=False)] * 2,
                     weights=[1.0, 1.0, 1.0])


# --- all of them --------------------------------------------------------------------------

@pytest.mark.parametrize("method_class", [KD, ReverseKD, DKD, DIST, LSKD])
def test_loss_is_finite_and_reaches_the_student(method_class):
    check_loss_trains(method_class)


def test_multi_teacher_loss_trains_with_two_teachers():
    check_loss_trains(MultiTeacher, teachers=2)


@pytest.mark.parametrize("method_class, bad", [
    (ReverseKD, {"T": 0.0}), (DKD, {"T": -1.0}), (DKD, {"beta": -8.0}), (DKD, {"warmup": 1.5}),
    (DIST, {"tau": 0.0}), (DIST, {"gamma": -1.0}), (LSKD, {"T": 0.0}), (LSKD, {"kd_weight": -9.0}),
    (MultiTeacher, {"weights": [1.0, -1.0]}), (MultiTeacher, {"weights": [0.0, 0.0]}),
    (MultiTeacher, {"weights": "equal"}), (MultiTeacher, {"alpha": 2.0}),
])
def test_nonsense_parameters_are_refused(method_class, bad):
    with pytest.raises(ValueError):
        method_class.validate_params({**method_class.defaults, **bad})
