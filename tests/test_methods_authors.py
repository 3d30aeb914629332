"""Five methods held to their authors' released code (issue #17): each loss on fixed, seeded
tensors against the reference formula written out here in numpy, and the defaults those
repositories set. The reference files are named in each method's docstring:

- ls-kd   sunshangquan/logit-standardization-KD mdistiller/engine/cfg.py: T 2, KD 9, CE 0.1
- at      szagoruyko/attention-transfer cifar.py, mdistiller distillers/AT.py: β·Σ mean((Qs − Qt)²),
          the larger *feature map* average-pooled to the smaller before attention
- fitnets mdistiller distillers/_common.py ConvReg: conv (with bias) → BatchNorm → ReLU
- crd     RepDistiller crd/criterion.py, crd/memory.py, dataset/cifar100.py: NCE with Z from the
          first batch, K negatives per anchor from other classes
- nst     mdistiller distillers/NST.py, RepDistiller distiller_zoo/NST.py: summed over stages
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kdbench_methods.at import AT
from kdbench_methods.crd import CRD, CRDInfoNCE
from kdbench_methods.fitnets import FitNets
from kdbench_methods.ls_kd import LSKD
from kdbench_methods.nst import NST
from torch import nn

from kdbench import ClassificationTask, IncompatibleCombination, ModelOutput, Recipe
from tests.methods_fixtures import one_thread, tiny_task  # noqa: F401


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def np64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def out(logits: torch.Tensor | None = None, **features: torch.Tensor) -> ModelOutput:
    """Outputs with these features; the logits are random unless given (one row per sample)."""
    rows = len(next(iter(features.values()))) if features else 4
    return ModelOutput(randn(rows, 4, seed=99) if logits is None else logits, features)


def block_mean(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Average non-overlapping blocks of the last two axes down to ``size`` (adaptive_avg_pool2d
    when the sizes divide)."""
    *lead, h, w = maps.shape
    return maps.reshape(*lead, size[0], h // size[0], size[1], w // size[1]).mean(axis=(-3, -1))


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


# --- ls-kd: mdistiller/engine/cfg.py of logit-standardization-KD ------------------------

def test_ls_kd_defaults_are_the_official_config():
    assert LSKD.defaults == {"T": 2.0, "kd_weight": 9.0, "ce_weight": 0.1}


def test_ls_kd_loss_is_nine_t_squared_kl_of_z_scores_plus_a_tenth_of_the_cross_entropy():
    s, t = 3.0 * randn(6, 4, seed=1), 3.0 * randn(6, 4, seed=2)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    method = LSKD(tiny_task(), [])
    terms = method.loss({"x": None, "y": labels, "index": torch.arange(6)}, out(s), [out(t)])

    def z_score(a: np.ndarray) -> np.ndarray:  # the official normalize(): unbiased std, 1e-7 added
        return (a - a.mean(1, keepdims=True)) / (1e-7 + a.std(1, ddof=1, keepdims=True))

    log_q = log_softmax(z_score(np64(s)) / 2.0)
    log_p = log_softmax(z_score(np64(t)) / 2.0)
    kd = (np.exp(log_p) * (log_p - log_q)).sum(1).mean() * 2.0**2
    ce = -log_softmax(np64(s))[np.arange(6), labels.numpy()].mean()
    assert terms["kd"].item() == pytest.approx(9.0 * kd, rel=1e-5)
    assert terms["task"].item() == pytest.approx(0.1 * ce, rel=1e-5)


# --- at: attention-transfer cifar.py, mdistiller AT.py -----------------------------------

def reference_attention(maps: np.ndarray) -> np.ndarray:
    """at(x): F.normalize of the channel mean of x², flattened per sample."""
    q = (maps**2).mean(axis=1).reshape(len(maps), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_at_is_beta_times_the_stage_sum_pooling_the_larger_feature_map_first():
    # stage1: the student's map is the larger (8×8 → 4×4); stage2: the teacher's (4×4 → 2×2).
    student = out(stage1=randn(4, 3, 8, 8, seed=3), stage2=randn(4, 2, 2, 2, seed=4))
    teacher = out(stage1=randn(4, 5, 4, 4, seed=5), stage2=randn(4, 6, 4, 4, seed=6))
    method = AT(tiny_task(), [])
    method.setup(student, [teacher])
    s1, s2 = np64(student.features["stage1"]), np64(student.features["stage2"])
    t1, t2 = np64(teacher.features["stage1"]), np64(teacher.features["stage2"])
    stage1 = ((reference_attention(block_mean(s1, (4, 4))) - reference_attention(t1)) ** 2).mean()
    stage2 = ((reference_attention(s2) - reference_attention(block_mean(t2, (2, 2)))) ** 2).mean()
    expected = 1000.0 * (stage1 + stage2)
    got = method.loss({"x": None, "y": torch.arange(4), "index": torch.arange(4)}, student, [teacher])["at"]
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_at_pools_features_not_attention_maps():
    # Pooling the squared activations would give another number: the two orders differ here.
    s, t = randn(4, 3, 8, 8, seed=7), randn(4, 3, 4, 4, seed=8)
    method = AT(tiny_task(), [])
    method.setup(out(stage1=s), [out(stage1=t)])
    got = method.loss({"x": None, "y": torch.arange(4), "index": torch.arange(4)}, out(stage1=s), [out(stage1=t)])
    q_t = reference_attention(np64(t))
    pooled_attention = block_mean((np64(s) ** 2).mean(axis=1), (4, 4)).reshape(4, -1)
    pooled_attention /= np.linalg.norm(pooled_attention, axis=1, keepdims=True)
    wrong = 1000.0 * ((pooled_attention - q_t) ** 2).mean()
    right = 1000.0 * ((reference_attention(block_mean(np64(s), (4, 4))) - q_t) ** 2).mean()
    assert abs(right - wrong) > 1e-3 * right
    assert got["at"].item() == pytest.approx(right, rel=1e-5)


# --- fitnets: mdistiller ConvReg ------------------------------------------------------------

def fill_regressor(regressor: nn.Module, seed: int) -> None:
    """Seeded values for every parameter, BatchNorm's scale and shift included."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in regressor.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator) + 0.1)


def batch_norm_relu(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Training-mode BatchNorm (batch mean, biased variance, eps 1e-5) then ReLU, channels on axis 1."""
    shape = [1] * x.ndim
    shape[1] = -1
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + 1e-5) * gamma.reshape(shape) + beta.reshape(shape)
    return np.maximum(y, 0.0)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Plain cross-correlation, [B, C, H, W] with [O, C, kh, kw], zero padding."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    h = (x.shape[2] - kh) // stride + 1
    wd = (x.shape[3] - kw) // stride + 1
    y = np.zeros((len(x), len(w), h, wd))
    for i in range(h):
        for j in range(wd):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("bckl,ockl->bo", patch, w)
    return y + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("student_size, hint_size, stride, pad", [(4, 4, 1, 0), (8, 4, 2, 1), (6, 4, 1, 0)])
def test_fitnets_hint_is_the_mse_after_conv_batchnorm_relu(student_size, hint_size, stride, pad):
    s = randn(4, 3, student_size, student_size, seed=9)
    t = F.relu(randn(4, 5, hint_size, hint_size, seed=10))
    method = FitNets(tiny_task(), [], weight=100.0)
    method.setup(out(stage2=s), [out(stage2=t)])
    fill_regressor(method.regressor, seed=11)
    conv, norm = method.regressor[0], method.regressor[1]
    regressed = conv2d(np64(s), np64(conv.weight), np64(conv.bias), stride, pad)
    regressed = batch_norm_relu(regressed, np64(norm.weight), np64(norm.bias), (0, 2, 3))
    expected = 100.0 * ((regressed - np64(t)) ** 2).mean()
    got = method.loss({"x": None, "y": torch.arange(4), "index": torch.arange(4)}, out(stage2=s), [out(stage2=t)])
    assert got["hint"].item() == pytest.approx(expected, rel=1e-5)


def test_fitnets_picks_convreg_kernels_by_shape():
    def regressor(student_size: int, hint_size: int) -> nn.Module:
        method = FitNets(tiny_task(), [])
        method.setup(out(stage2=randn(2, 3, student_size, student_size)),
                     [out(stage2=randn(2, 5, hint_size, hint_size))])
        return method.regressor

    for student_size, hint_size, kind, kernel, stride, padding in [
            (4, 4, nn.Conv2d, (1, 1), (1, 1), (0, 0)), (8, 4, nn.Conv2d, (3, 3), (2, 2), (1, 1)),
            (4, 8, nn.ConvTranspose2d, (4, 4), (2, 2), (1, 1)), (7, 4, nn.Conv2d, (4, 4), (1, 1), (0, 0))]:
        conv, norm, relu = regressor(student_size, hint_size)
        assert type(conv) is kind and conv.bias is not None
        assert (conv.kernel_size, conv.stride, conv.padding) == (kernel, stride, padding)
        assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == 5 and isinstance(relu, nn.ReLU)
        assert conv(randn(2, 3, student_size, student_size)).shape[-2:] == (hint_size, hint_size)
    with pytest.raises(IncompatibleCombination, match="smaller than the hint"):
        regressor(3, 8)


def test_fitnets_regresses_vectors_through_linear_batchnorm_relu():
    s, t = randn(6, 4, seed=12), F.relu(randn(6, 7, seed=13))
    method = FitNets(tiny_task(), [], student_feature="embedding", teacher_feature="embedding", weight=100.0)
    method.setup(out(embedding=s), [out(embedding=t)])
    fill_regressor(method.regressor, seed=14)
    linear, norm, _ = method.regressor
    regressed = np64(s) @ np64(linear.weight).T + np64(linear.bias)
    regressed = batch_norm_relu(regressed, np64(norm.weight), np64(norm.bias), (0,))
    expected = 100.0 * ((regressed - np64(t)) ** 2).mean()
    got = method.loss({"x": None, "y": torch.arange(6) % 4, "index": torch.arange(6)}, out(embedding=s),
                      [out(embedding=t)])
    assert got["hint"].item() == pytest.approx(expected, rel=1e-5)


# --- crd: RepDistiller crd/criterion.py, crd/memory.py, dataset/cifar100.py --------------

def balanced_task(per_class: int = 16, classes: int = 4, seed: int = 0) -> ClassificationTask:
    """A task whose training labels are known: ``per_class`` samples of each class, shuffled."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(per_class)[torch.randperm(per_class * classes, generator=generator)]
    x = torch.randn(len(y), 1, 8, 8, generator=generator)
    recipe = Recipe(epochs=1, batch_size=8, lr=0.05, schedule="constant")
    splits = {"train": (x, y), "test": (x[:4], y[:4])}
    return ClassificationTask(splits, classes, {"teacher": recipe, "student": recipe})


def test_crd_is_the_nce_of_eq_18_with_z_from_the_first_batch():
    # K = 48 = the number of other-class samples of every anchor, drawn without replacement:
    # each anchor's negatives are exactly those samples (the NCE sum does not depend on order).
    task = balanced_task()
    labels = task.splits["train"][1].numpy()
    torch.manual_seed(0)
    method = CRD(task, [], negatives=48, nce_t=0.5)
    s, t = randn(5, 3, seed=15), randn(5, 6, seed=16)
    method.setup(out(embedding=s), [out(embedding=t)])
    index = torch.tensor([0, 9, 17, 30, 63])
    bank_s, bank_t = np64(method.bank_student), np64(method.bank_teacher)
    with torch.no_grad():
        v_s = np64(F.normalize(method.embed_student(s), dim=1))
        v_t = np64(F.normalize(method.embed_teacher(t), dim=1))
    n, k, eps = 64, 48, 1e-7

    def nce(anchors: np.ndarray, bank: np.ndarray) -> float:
        rows = [np.concatenate([[i], np.flatnonzero(labels != labels[i])]) for i in index.numpy()]
        scores = np.stack([np.exp(bank[row] @ anchor / 0.5) for anchor, row in zip(anchors, rows, strict=True)])
        z = scores.mean() * n  # ContrastMemory: Z = mean(out) * outputSize, on the first batch
        p = scores / z
        noise = k / n  # m * Pn with Pn = 1 / n_data
        log_d1 = np.log(p[:, 0] / (p[:, 0] + noise + eps))
        log_d0 = np.log(noise / (p[:, 1:] + noise + eps))
        return -(log_d1.sum() + log_d0.sum()) / len(anchors)

    expected = 0.8 * (nce(v_s, bank_t) + nce(v_t, bank_s))
    batch = {"x": None, "y": torch.from_numpy(labels[index.numpy()]), "index": index}
    got = method.loss(batch, out(embedding=s), [out(embedding=t)])["crd"]
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_crd_keeps_the_first_batchs_normalising_constant():
    task = balanced_task()
    method = CRD(task, [], negatives=20)
    s, t = randn(4, 3, seed=17), randn(4, 6, seed=18)
    method.setup(out(embedding=s), [out(embedding=t)])
    assert (method.normaliser < 0).all()
    batch = {"x": None, "y": task.splits["train"][1][:4], "index": torch.arange(4)}
    method.loss(batch, out(embedding=s), [out(embedding=t)])
    first = method.normaliser.clone()
    assert (first > 0).all()
    batch = {"x": None, "y": task.splits["train"][1][4:8], "index": torch.arange(4, 8)}
    method.loss(batch, out(embedding=randn(4, 3, seed=19)), [out(embedding=randn(4, 6, seed=20))])
    torch.testing.assert_close(method.normaliser, first)


def test_crd_banks_start_uniform_as_contrast_memory():
    method = CRD(balanced_task(), [], dim=12)
    method.setup(out(embedding=randn(4, 3)), [out(embedding=randn(4, 6))])
    bound = 1 / math.sqrt(12 / 3)
    for bank in (method.bank_student, method.bank_teacher):
        assert bank.shape == (64, 12) and bank.abs().max() <= bound
        assert bank.abs().max() > 0.9 * bound  # uniform over the whole interval, not unit rows


@pytest.mark.parametrize("negatives", [5, 40, 500])  # without replacement, near the pool, with replacement
def test_crd_negatives_never_share_the_anchors_class(negatives):
    # Unequal classes: pools of 44, 52 and 56 other-class samples.
    y = torch.tensor([0] * 20 + [1] * 12 + [2] * 8 + [0] * 4)
    x = torch.randn(len(y), 1, 8, 8)
    recipe = Recipe(epochs=1, batch_size=8, lr=0.05, schedule="constant")
    task = ClassificationTask({"train": (x, y), "test": (x[:4], y[:4])}, 3, {"teacher": recipe, "student": recipe})
    method = CRD(task, [], negatives=negatives)
    method.setup(out(embedding=randn(4, 3)), [out(embedding=randn(4, 6))])
    torch.manual_seed(1)
    for _ in range(20):
        index = torch.randperm(len(y))[:8]
        drawn = method.draw_negatives(index)
        assert drawn.shape == (8, negatives)
        assert (y[drawn] != y[index][:, None]).all()
        assert not (drawn == index[:, None]).any()
        for row, anchor in zip(drawn, index, strict=True):
            if negatives <= int((y != y[anchor]).sum()):
                assert len(row.unique()) == negatives  # without replacement while the pool allows


def test_crd_without_a_classification_task_is_incompatible():
    class Unlabelled:
        num_train = 8

    method = CRD(Unlabelled(), [])
    with pytest.raises(IncompatibleCombination, match="training labels"):
        method.setup(out(embedding=randn(4, 3)), [out(embedding=randn(4, 6))])


def test_crd_infonce_keeps_the_softmax_form_with_uniform_negatives_shared_by_the_batch():
    task = tiny_task(n=64)
    method = CRDInfoNCE(task, [], negatives=10, nce_t=0.5, weight=1.0)
    s, t = randn(5, 3, seed=21), randn(5, 6, seed=22)
    method.setup(out(embedding=s), [out(embedding=t)])
    torch.testing.assert_close(method.bank_student.norm(dim=1), torch.ones(64))
    bank_s, bank_t = np64(method.bank_student), np64(method.bank_teacher)
    with torch.no_grad():
        v_s = np64(F.normalize(method.embed_student(s), dim=1))
        v_t = np64(F.normalize(method.embed_teacher(t), dim=1))
    index = np.array([3, 7, 11, 20, 42])
    torch.manual_seed(5)
    negatives = torch.randint(0, 64, (10,)).numpy()  # one uniform draw over every sample, any class

    def info_nce(anchors: np.ndarray, bank: np.ndarray) -> float:
        logits = np.stack([np.concatenate([[a @ bank[i]], bank[negatives] @ a]) for a, i in zip(anchors, index,
                                                                                              strict=True)]) / 0.5
        return float(-log_softmax(logits)[:, 0].mean())

    expected = info_nce(v_s, bank_t) + info_nce(v_t, bank_s)
    labels = task.splits["train"][1][torch.from_numpy(index)]
    torch.manual_seed(5)
    got = method.loss({"x": None, "y": labels, "index": torch.from_numpy(index)}, out(embedding=s),
                      [out(embedding=t)])
    assert got["crd"].item() == pytest.approx(expected, rel=1e-5)


# --- nst: mdistiller NST.py, RepDistiller NSTLoss ------------------------------------------

def reference_nst(f_s: np.ndarray, f_t: np.ndarray) -> float:
    """single_stage_nst_loss: pool the larger map, normalise channels, poly-kernel MMD, means."""
    if f_s.shape[2] > f_t.shape[2]:
        f_s = block_mean(f_s, f_t.shape[2:])
    elif f_s.shape[2] < f_t.shape[2]:
        f_t = block_mean(f_t, f_s.shape[2:])
    f_s = f_s.reshape(*f_s.shape[:2], -1)
    f_t = f_t.reshape(*f_t.shape[:2], -1)
    f_s = f_s / np.linalg.norm(f_s, axis=2, keepdims=True)
    f_t = f_t / np.linalg.norm(f_t, axis=2, keepdims=True)

    def poly(a: np.ndarray, b: np.ndarray) -> float:
        return float((np.einsum("bik,bjk->bij", a, b) ** 2).mean())

    return poly(f_t, f_t) + poly(f_s, f_s) - 2 * poly(f_s, f_t)


def test_nst_is_fifty_times_the_sum_over_every_shared_stage():
    student = out(stage1=randn(4, 3, 8, 8, seed=23), stage2=randn(4, 4, 2, 2, seed=24),
                  stage3=randn(4, 5, 2, 2, seed=25), embedding=randn(4, 5, seed=26))
    teacher = out(stage1=randn(4, 4, 4, 4, seed=27), stage2=randn(4, 6, 4, 4, seed=28),
                  stage3=randn(4, 8, 2, 2, seed=29), embedding=randn(4, 8, seed=30))
    method = NST(tiny_task(), [])
    method.setup(student, [teacher])
    expected = 50.0 * sum(reference_nst(np64(student.features[name]), np64(teacher.features[name]))
                          for name in ("stage1", "stage2", "stage3"))
    got = method.loss({"x": None, "y": torch.arange(4), "index": torch.arange(4)}, student, [teacher])["nst"]
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_nst_on_one_named_pair_uses_that_pair_only():
    student = out(bev=randn(4, 3, 4, 4, seed=31), stage1=randn(4, 3, 4, 4, seed=32))
    teacher = out(bev=randn(4, 5, 4, 4, seed=33), stage1=randn(4, 5, 4, 4, seed=34))
    method = NST(tiny_task(), [], student_feature="bev", teacher_feature="bev")
    method.setup(student, [teacher])
    expected = 50.0 * reference_nst(np64(student.features["bev"]), np64(teacher.features["bev"]))
    got = method.loss({"x": None, "y": torch.arange(4), "index": torch.arange(4)}, student, [teacher])["nst"]
    assert got.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="both"):
        NST.validate_params({**NST.defaults, "student_feature": "bev"})
