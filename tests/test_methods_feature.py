"""Feature-based methods (fitnets, at, nst, vid, pkt) against explicit loops, zero when the
student's features equal the teacher's, resizing of maps, clear errors for missing features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kdbench_methods.at import AT
from kdbench_methods.fitnets import FitNets
from kdbench_methods.nst import NST
from kdbench_methods.pkt import PKT
from kdbench_methods.vid import VID
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput
from tests.methods_fixtures import check_loss_trains, one_thread, tiny_task  # noqa: F401

LABELS = torch.tensor([0, 1, 2, 3])
BATCH = {"x": None, "y": LABELS, "index": torch.arange(4)}


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def out(**features: torch.Tensor) -> ModelOutput:
    return ModelOutput(randn(4, 4, seed=99), features)


def np64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def term(method, name: str, student: ModelOutput, teacher: ModelOutput) -> float:
    return method.loss(BATCH, student, [teacher])[name].item()


def set_up(method_class, student: ModelOutput, teacher: ModelOutput, **params):
    method = method_class(tiny_task(), [], **params)
    method.setup(student, [teacher])
    return method


def pool2(maps: np.ndarray) -> np.ndarray:
    """Average 2×2 blocks of the last two axes (what resizing 8×8 to 4×4 should do)."""
    *lead, h, w = maps.shape
    return maps.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


# --- fitnets ------------------------------------------------------------------------------

def test_fitnets_hint_is_zero_when_the_regressed_student_map_is_the_hint():
    s = randn(4, 3, 4, 4)
    method = set_up(FitNets, out(stage2=s), out(stage2=randn(4, 5, 4, 4)))
    with torch.no_grad():
        hint = method.regressor(s)
    assert term(method, "hint", out(stage2=s), out(stage2=hint)) == pytest.approx(0.0, abs=1e-12)


def test_fitnets_hint_is_weighted_mse_of_regressed_student_maps():
    # mdistiller's ConvReg at equal sizes: 1×1 convolution with bias, BatchNorm (batch
    # statistics while training, scale 1 and shift 0 at first), ReLU.
    s, t = randn(4, 3, 4, 4, seed=1), randn(4, 5, 4, 4, seed=2)
    method = set_up(FitNets, out(stage2=s), out(stage2=t), weight=7.0)
    conv = method.regressor[0]
    z = np.einsum("oc,bchw->bohw", np64(conv.weight)[:, :, 0, 0], np64(s)) + np64(conv.bias)[None, :, None, None]
    z = (z - z.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(z.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    expected = 7.0 * ((np.maximum(z, 0) - np64(t)) ** 2).mean()
    assert term(method, "hint", out(stage2=s), out(stage2=t)) == pytest.approx(expected, rel=1e-5)


def test_fitnets_halves_a_student_map_twice_the_hints_with_a_strided_convolution():
    s, t = randn(4, 3, 8, 8, seed=3), randn(4, 2, 4, 4, seed=4)
    method = set_up(FitNets, out(stage2=s), out(stage2=t))
    conv = method.regressor[0]
    assert isinstance(conv, nn.Conv2d) and (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (2, 2), (1, 1))
    assert method.regressor(s).shape == t.shape
    assert np.isfinite(term(method, "hint", out(stage2=s), out(stage2=t)))


def test_fitnets_regresses_vectors_with_a_linear_map_batchnorm_and_relu():
    s, t = randn(4, 6, seed=5), randn(4, 9, seed=6)
    method = set_up(FitNets, out(embedding=s), out(embedding=t), student_feature="embedding",
                    teacher_feature="embedding", weight=1.0)
    linear, norm, relu = method.regressor
    assert isinstance(linear, nn.Linear) and linear.bias is not None
    assert isinstance(norm, nn.BatchNorm1d) and isinstance(relu, nn.ReLU)
    z = np64(s) @ np64(linear.weight).T + np64(linear.bias)
    z = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
    expected = ((np.maximum(z, 0) - np64(t)) ** 2).mean()
    terms = method.loss(BATCH, out(embedding=s), [out(embedding=t)])
    assert terms["hint"].item() == pytest.approx(expected, rel=1e-5)


def test_a_missing_feature_name_is_an_incompatible_combination_naming_what_exists():
    expected = r"teacher has no feature named 'stage2'.*embedding"
    with pytest.raises(IncompatibleCombination, match=expected):
        set_up(FitNets, out(stage2=randn(4, 3, 4, 4)), out(embedding=randn(4, 3)))


def test_a_map_cannot_be_hinted_by_a_vector():
    with pytest.raises(IncompatibleCombination, match="both be vectors or both be spatial maps"):
        set_up(FitNets, out(stage2=randn(4, 3, 4, 4)), out(stage2=randn(4, 3)))


# --- at -----------------------------------------------------------------------------------

def numpy_attention(maps: np.ndarray) -> np.ndarray:
    """Channel mean of squared activations, flattened, each sample scaled to unit L2 norm."""
    a = (maps**2).mean(axis=1).reshape(len(maps), -1)
    return a / np.sqrt((a**2).sum(axis=1, keepdims=True))


def test_at_is_zero_when_student_maps_equal_teacher_maps():
    maps = {"stage1": randn(4, 3, 8, 8, seed=7), "stage2": randn(4, 4, 4, 4, seed=8)}
    method = set_up(AT, out(**maps), out(**{k: v.clone() for k, v in maps.items()}))
    assert term(method, "at", out(**maps), out(**maps)) == pytest.approx(0.0, abs=1e-9)


def test_at_sums_squared_attention_differences_over_stages_named_alike():
    # The student lacks stage3 and the teacher stage1: only stage2 is shared. Channel counts
    # differ (attention maps are channel-free).
    student = out(stage1=randn(4, 3, 8, 8, seed=9), stage2=randn(4, 2, 4, 4, seed=10))
    teacher = out(stage2=randn(4, 6, 4, 4, seed=11), stage3=randn(4, 6, 2, 2, seed=12))
    method = set_up(AT, student, teacher)
    assert method.stages == ["stage2"]
    difference = numpy_attention(np64(student.features["stage2"])) - numpy_attention(
        np64(teacher.features["stage2"]))
    expected = 1000.0 * (difference**2).mean()
    assert method.loss(BATCH, student, [teacher])["at"].item() == pytest.approx(expected, rel=1e-5)


def test_at_pools_the_larger_feature_map_to_the_smaller_before_taking_attention():
    s, t = randn(4, 3, 8, 8, seed=13), randn(4, 5, 4, 4, seed=14)
    method = set_up(AT, out(stage1=s), out(stage1=t))
    expected = 1000.0 * ((numpy_attention(pool2(np64(s))) - numpy_attention(np64(t))) ** 2).mean()
    assert term(method, "at", out(stage1=s), out(stage1=t)) == pytest.approx(expected, rel=1e-5)
    # the teacher's map is pooled when it is the larger one
    method = set_up(AT, out(stage1=t), out(stage1=s))
    expected = 1000.0 * ((numpy_attention(np64(t)) - numpy_attention(pool2(np64(s)))) ** 2).mean()
    assert term(method, "at", out(stage1=t), out(stage1=s)) == pytest.approx(expected, rel=1e-5)


def test_at_without_a_shared_map_name_is_incompatible():
    with pytest.raises(IncompatibleCombination, match="no spatial feature map"):
        set_up(AT, out(stage1=randn(4, 3, 8, 8)), out(block1=randn(4, 3, 8, 8)))


# --- nst ----------------------------------------------------------------------------------

def numpy_mmd(s: np.ndarray, t: np.ndarray) -> float:
    """Squared MMD with k(x, y) = (xᵀy)² between normalised channel vectors, sample by sample."""
    total = 0.0
    for b in range(len(s)):
        fs = s[b].reshape(len(s[b]), -1)
        ft = t[b].reshape(len(t[b]), -1)
        fs = fs / np.linalg.norm(fs, axis=1, keepdims=True)
        ft = ft / np.linalg.norm(ft, axis=1, keepdims=True)

        def k(a: np.ndarray, c: np.ndarray) -> float:
            return float(np.mean([(x @ y) ** 2 for x in a for y in c]))

        total += k(fs, fs) + k(ft, ft) - 2 * k(fs, ft)
    return total / len(s)


def test_nst_is_polynomial_kernel_mmd_between_channel_patterns():
    s, t = randn(4, 3, 4, 4, seed=15), randn(4, 5, 4, 4, seed=16)
    method = set_up(NST, out(stage3=s), out(stage3=t))
    expected = 50.0 * numpy_mmd(np64(s), np64(t))
    assert term(method, "nst", out(stage3=s), out(stage3=t)) == pytest.approx(expected, rel=1e-4)


def test_nst_is_zero_for_equal_maps():
    maps = randn(4, 3, 4, 4, seed=17)
    method = set_up(NST, out(stage3=maps), out(stage3=maps))
    assert term(method, "nst", out(stage3=maps), out(stage3=maps.clone())) == pytest.approx(
        0.0, abs=1e-6)


def test_nst_needs_spatial_maps():
    with pytest.raises(IncompatibleCombination, match="spatial"):
        set_up(NST, out(stage3=randn(4, 3)), out(stage3=randn(4, 3)))


# --- vid ----------------------------------------------------------------------------------

def test_vid_is_the_gaussian_negative_log_likelihood_of_teacher_maps():
    s, t = randn(4, 3, 4, 4, seed=18), randn(4, 5, 4, 4, seed=19)
    method = set_up(VID, out(stage2=s), out(stage2=t))
    with torch.no_grad():
        method.raw_variance["stage2"].copy_(torch.linspace(-1.0, 2.0, 5))
    w1, w2, w3 = (np64(method.mean["stage2"][i].weight)[:, :, 0, 0] for i in (0, 2, 4))
    hidden = np.maximum(np.einsum("oc,bchw->bohw", w1, np64(s)), 0)
    hidden = np.maximum(np.einsum("oc,bchw->bohw", w2, hidden), 0)
    mean = np.einsum("oc,bchw->bohw", w3, hidden)
    variance = (np.log1p(np.exp(np.linspace(-1.0, 2.0, 5))) + 1e-5).reshape(1, 5, 1, 1)
    expected = (0.5 * ((mean - np64(t)) ** 2 / variance + np.log(variance))).mean()
    assert term(method, "vid", out(stage2=s), out(stage2=t)) == pytest.approx(expected, rel=1e-5)


def test_vid_starts_from_the_initial_variance_on_every_shared_stage():
    student = out(stage1=randn(4, 3, 8, 8), stage2=randn(4, 3, 4, 4))
    teacher = out(stage1=randn(4, 6, 8, 8), stage2=randn(4, 7, 4, 4))
    method = set_up(VID, student, teacher, init_var=3.0)
    assert method.stages == ["stage1", "stage2"]
    for name, channels in (("stage1", 6), ("stage2", 7)):
        variance = torch.nn.functional.softplus(method.raw_variance[name]) + 1e-5
        torch.testing.assert_close(variance, torch.full((channels,), 3.0))


# --- pkt ----------------------------------------------------------------------------------

def test_pkt_is_kl_between_cosine_affinity_distributions():
    s, t = randn(4, 6, seed=20), randn(4, 9, seed=21)

    def affinities(x: np.ndarray) -> np.ndarray:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        k = (unit @ unit.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = affinities(np64(s)), affinities(np64(t))
    expected = 30000.0 * (p_t * np.log(p_t / p_s)).mean()
    method = set_up(PKT, out(embedding=s), out(embedding=t))
    terms = method.loss(BATCH, out(embedding=s), [out(embedding=t)])
    assert terms["pkt"].item() == pytest.approx(expected, rel=1e-4)


def test_pkt_is_zero_when_embeddings_agree_up_to_scale():
    s = randn(4, 6, seed=22)
    method = set_up(PKT, out(embedding=s), out(embedding=3 * s), weight=1.0)
    divergence = term(method, "pkt", out(embedding=s), out(embedding=3 * s))
    assert divergence == pytest.approx(0.0, abs=1e-8)


# --- all of them --------------------------------------------------------------------------

@pytest.mark.parametrize("method_class", [FitNets, AT, NST, VID, PKT])
def test_loss_is_finite_and_reaches_student_and_method_parameters(method_class):
    check_loss_trains(method_class)


@pytest.mark.parametrize("method_class, bad", [
    (FitNets, {"weight": -1.0}), (AT, {"beta": -1.0}), (AT, {"p": 0.0}), (NST, {"weight": -50.0}),
    (VID, {"eps": 0.0}), (VID, {"init_var": 0.0}), (PKT, {"weight": -1.0}),
])
def test_nonsense_parameters_are_refused(method_class, bad):
    with pytest.raises(ValueError):
        method_class.validate_params({**method_class.defaults, **bad})
