"""Hinton KD's loss against values worked out by hand, and the paper's T² gradient scaling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from kdbench_methods.kd import KD, soft_target_loss

from kdbench import ClassificationTask, ModelOutput, Recipe

E = math.e


def tiny_task() -> ClassificationTask:
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    recipe = Recipe(epochs=1, batch_size=2, lr=0.1)
    return ClassificationTask({"train": (x, y), "test": (x, y)}, 3, {"teacher": recipe, "student": recipe})


def test_soft_loss_matches_hand_computation_at_t1():
    # p_teacher = softmax([3,2,1]), p_student = softmax([1,2,3]): log(p_t/p_s) = (2, 0, -2),
    # so KL = 2·(p1 - p3) = 2·(e² - 1)/(e² + e + 1).
    student, teacher = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]])
    expected = 2 * (E**2 - 1) / (E**2 + E + 1)
    assert soft_target_loss(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_soft_loss_matches_hand_computation_at_t2_with_t_squared():
    # At T = 2 the log-ratios are (1, 0, -1): KL = (e - 1)/(e + √e + 1), times T² = 4.
    student, teacher = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]])
    expected = 4 * (E - 1) / (E + math.sqrt(E) + 1)
    assert soft_target_loss(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_batchmean_averages_over_samples_not_classes():
    one = torch.tensor([[1.0, 2.0, 3.0]])
    same_twice = soft_target_loss(one.repeat(2, 1), one.flip(1).repeat(2, 1), 1.0)
    assert same_twice.item() == pytest.approx(soft_target_loss(one, one.flip(1), 1.0).item(), rel=1e-6)


def test_kd_combines_soft_and_hard_terms_with_alpha():
    task = tiny_task()
    method = KD(task, [], T=2.0, alpha=0.25)
    student, teacher = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]])
    batch = {"x": None, "y": torch.tensor([2]), "index": torch.tensor([0])}
    terms = method.loss(batch, ModelOutput(student, {}), [ModelOutput(teacher, {})])
    soft = 4 * (E - 1) / (E + math.sqrt(E) + 1)
    hard = -math.log(E**3 / (E + E**2 + E**3))
    assert terms["kd"].item() == pytest.approx(0.25 * soft, rel=1e-6)
    assert terms["task"].item() == pytest.approx(0.75 * hard, rel=1e-6)


def test_zero_when_student_equals_teacher():
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    for temperature in (1.0, 4.0, 20.0):
        assert soft_target_loss(logits.clone(), logits, temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_is_t_times_probability_difference():
    # d/dz [T²·KL(p_T(v) || p_T(z))] = T·(softmax(z/T) - softmax(v/T)), per sample, averaged.
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(5, 4, generator=generator, requires_grad=True)
    teacher = torch.randn(5, 4, generator=generator)
    temperature = 3.0
    soft_target_loss(student, teacher, temperature).backward()
    expected = temperature * (F.softmax(student.detach() / temperature, 1) - F.softmax(teacher / temperature, 1)) / 5
    torch.testing.assert_close(student.grad, expected, rtol=1e-5, atol=1e-7)


def test_t_squared_keeps_gradient_magnitude_constant_at_high_temperature():
    # Hinton et al. 2015 §2.1: for zero-mean logits and large T the gradient of the soft
    # cross-entropy is about (z - v)/(N·T²); the T² factor cancels it, so the scaled
    # gradient tends to (z - v)/N (N classes; here one sample) whatever T is.
    generator = torch.Generator().manual_seed(2)
    z = torch.randn(1, 6, generator=generator)
    v = torch.randn(1, 6, generator=generator)
    z, v = z - z.mean(), v - v.mean()
    grads = {}
    for temperature in (20.0, 40.0, 80.0):
        logits = z.clone().requires_grad_(True)
        soft_target_loss(logits, v, temperature).backward()
        grads[temperature] = logits.grad
    limit = (z - v) / 6
    error = {t: ((g - limit).norm() / limit.norm()).item() for t, g in grads.items()}
    assert error[80.0] < error[40.0] < error[20.0] < 0.1
    assert error[80.0] < 0.02
    # without the T² factor, doubling T would divide the gradient by about four
    assert (grads[20.0] / 20.0**2).norm() / (grads[40.0] / 40.0**2).norm() == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("bad", [{"T": 0.0}, {"T": -1.0}, {"alpha": 1.5}])
def test_nonsense_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        KD.validate_params({**KD.defaults, **bad})
