"""The data-free plugin: each loss against its paper's formula written out here in numpy, every method
trained a few steps on a task whose training split is withheld, and the LeNet-5 pair's outputs.

References (named in each method's docstring): DAFL's one-hot, activation and base-10 information
entropy terms (DAFL-train.py); DFAD's mean L1 between logits (DFAD_mnist.py); DeepInversion's
BatchNorm statistics distance, Σ ‖μ − μ_run‖₂ + ‖σ² − σ²_run‖₂ with the biased variance, and its
total variation (deepinversion.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from kdbench_datafree import dafl
from kdbench_datafree.dafl import DAFL, dafl_losses, identical_images
from kdbench_datafree.deepinversion import DeepInversion, feature_statistics_loss, total_variation
from kdbench_datafree.dfad import DFAD, logit_l1
from kdbench_datafree.kd_noise import NoiseKD
from kdbench_datafree.models import LENET5_BN, LENET5_HALF
from kdbench_datafree.synthetic import Generator
from torch import nn

from kdbench import ClassificationTask, IncompatibleCombination, Recipe, Teacher, TrainContext
from kdbench.data_free import TrainingInputRead, without_training_inputs
from kdbench.registry import Registry
from kdbench.suite import load_suite
from tests.methods_fixtures import one_thread  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def np64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# --- DAFL ---------------------------------------------------------------------------------


def test_dafl_losses_are_the_papers_one_hot_activation_and_base_10_entropy():
    logits, features = randn(8, 10, seed=1) * 3, randn(8, 12, seed=2)
    terms = dafl_losses(logits, features)
    p = softmax(np64(logits))
    mean = p.mean(0)
    assert terms["one_hot"].item() == pytest.approx(-np.log(p[np.arange(8), p.argmax(1)]).mean(), rel=1e-5)
    assert terms["activation"].item() == pytest.approx(-np.abs(np64(features)).mean(), rel=1e-5)
    assert terms["entropy"].item() == pytest.approx((mean * np.log10(mean)).sum(), rel=1e-5)


def test_dafl_entropy_is_minus_one_on_a_balanced_batch_and_finite_where_a_class_gets_nothing():
    # one confident row per class: the batch mean is uniform, so Σ p log10 p = log10(1/10) = -1
    assert dafl_losses(torch.eye(10) * 50, torch.ones(10, 3))["entropy"].item() == pytest.approx(-1.0, abs=1e-6)
    # the last class's probability underflows to 0 in every row: its 0·log 0 counts as 0, not NaN
    logits = torch.tensor([[0.0, 0.0, -1e4], [0.0, 0.0, -1e4]])
    assert dafl_losses(logits, torch.ones(2, 3))["entropy"].item() == pytest.approx(math.log10(0.5), abs=1e-6)


def test_identical_images_flags_a_batch_of_one_image_repeated_and_nothing_else():
    assert identical_images(torch.zeros(4, 1, 3, 3))
    assert identical_images(randn(1, 1, 3, 3).expand(5, 1, 3, 3))
    almost = torch.zeros(4, 1, 3, 3)
    almost[2, 0, 1, 1] = 1e-3  # one pixel of one image differs
    assert not identical_images(almost)
    assert not identical_images(randn(4, 1, 3, 3, seed=8))


class DeadGenerator(Generator):
    """A generator in DAFL's dead state: every image the same, yet still differentiable, so the method's
    generator step runs as it does once the real one's tanh has saturated."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z) * 0.0


@pytest.mark.parametrize("generator_class, share", [(Generator, 0.0), (DeadGenerator, 1.0)], ids=["alive", "dead"])
def test_dafl_logs_the_share_of_its_generators_batches_that_were_one_image(generator_class, share, monkeypatch):
    monkeypatch.setattr(dafl, "Generator", generator_class)
    task = mnist_shaped_task()
    guarded = without_training_inputs(task, "dafl")
    torch.manual_seed(0)
    teacher = Teacher(guarded, LENET5_BN.build(task).eval(), method="dafl", needs="model", cached=False)
    method = DAFL(guarded, [teacher], **{**DAFL.defaults, **TINY[DAFL]})
    logged: list[dict[str, float]] = []
    context = TrainContext(task=guarded, model=LENET5_HALF.build(task), role="student", recipe=task.recipe("student"),
                           seed=0, method=method, teachers=(teacher,), log=lambda metrics, step: logged.append(metrics))
    method.fit(context)
    assert logged == [{"dafl_identical_batches": share}]


# --- DFAD ---------------------------------------------------------------------------------


def test_dfad_l1_is_the_mean_absolute_logit_difference():
    student, teacher = randn(6, 10, seed=3), randn(6, 10, seed=4)
    assert logit_l1(student, teacher).item() == pytest.approx(np.abs(np64(student) - np64(teacher)).mean(), rel=1e-6)
    assert logit_l1(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2)).item() == 2.5


# --- DeepInversion ------------------------------------------------------------------------


def bn_model() -> nn.Sequential:
    """BatchNorm → 1×1 convolution → BatchNorm, in eval mode, with running statistics far from 0/1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    for k, bn in enumerate((model[0], model[2])):
        channels = bn.num_features
        bn.running_mean.copy_(randn(channels, seed=10 + k))
        bn.running_var.copy_(randn(channels, seed=20 + k).abs() + 0.5)
        bn.weight.data.copy_(randn(channels, seed=30 + k))
        bn.bias.data.copy_(randn(channels, seed=40 + k))
    return model.eval()


def distance(x: np.ndarray, bn: nn.BatchNorm2d) -> float:
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # numpy's var is the biased one
    return float(np.linalg.norm(mean - np64(bn.running_mean)) + np.linalg.norm(var - np64(bn.running_var)))


def batch_norm_eval(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    shape = (1, -1, 1, 1)
    normalised = (x - np64(bn.running_mean).reshape(shape)) / np.sqrt(np64(bn.running_var).reshape(shape) + bn.eps)
    return normalised * np64(bn.weight).reshape(shape) + np64(bn.bias).reshape(shape)


def test_deepinversion_statistics_loss_sums_each_batchnorm_inputs_distance_to_its_running_statistics():
    model, x = bn_model(), randn(4, 2, 3, 3, seed=5) * 2 + 1
    output, loss = feature_statistics_loss(model, x)
    first = np64(x)
    conv = model[1]
    second = (np.einsum("oc,nchw->nohw", np64(conv.weight)[:, :, 0, 0], batch_norm_eval(first, model[0]))
              + np64(conv.bias).reshape(1, -1, 1, 1))
    assert loss.item() == pytest.approx(distance(first, model[0]) + distance(second, model[2]), rel=1e-5)
    assert np.allclose(np64(output.output), batch_norm_eval(second, model[2]), atol=1e-5)
    assert all(not m._forward_hooks for m in model.modules())  # the teacher is left without hooks


def test_deepinversion_statistics_loss_is_zero_on_a_batch_with_the_running_statistics():
    bn = nn.BatchNorm2d(1).eval()
    x = torch.tensor([-1.0, 1.0, -1.0, 1.0]).view(4, 1, 1, 1)  # mean 0, biased variance 1: PyTorch's initial stats
    assert feature_statistics_loss(bn, x)[1].item() == 0.0


def test_deepinversion_refuses_a_teacher_without_batchnorm_before_anything_trains():
    with pytest.raises(IncompatibleCombination, match="no BatchNorm2d"):
        feature_statistics_loss(nn.Conv2d(1, 1, 1), randn(2, 1, 3, 3))
    task = mnist_shaped_task()
    DeepInversion.check(task, [LENET5_BN], LENET5_HALF)
    with pytest.raises(IncompatibleCombination, match="teacher lenet5-half has no BatchNorm2d"):
        DeepInversion.check(task, [LENET5_HALF], LENET5_HALF)


def test_total_variation_sums_the_norms_of_horizontal_vertical_and_diagonal_differences():
    image = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    # right: (-1, -1) → √2; down: (0, 0) → 0; the two diagonals: -1 each → 1 + 1
    assert total_variation(image).item() == pytest.approx(math.sqrt(2) + 2)


# --- every method, a few steps, against the guard ------------------------------------------


def mnist_shaped_task(batch: int = 8) -> ClassificationTask:
    """Random 1×28×28 images, 10 classes, a student recipe of ``batch`` (Adam)."""
    x, y = randn(48, 1, 28, 28, seed=6), torch.arange(48) % 10
    recipe = Recipe(epochs=1, batch_size=batch, optimizer="adam", lr=0.01)
    return ClassificationTask({"train": (x[:32], y[:32]), "val": (x[32:40], y[32:40]), "test": (x[40:], y[40:])},
                              10, {"teacher": recipe, "student": recipe})


TINY = {
    NoiseKD: {},
    DAFL: {"latent_dim": 8},
    DFAD: {"student_steps": 2, "latent_dim": 8},
    DeepInversion: {"images": 6, "batch": 4, "inversion_iterations": 2},
}
"""Small sizes; the budget is the recipe's one epoch of 32 images in batches of 8: 4 student steps (dfad's
generator steps before the third)."""


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("method_class", list(TINY), ids=lambda m: m.name)
def test_each_method_trains_its_student_without_a_training_input_and_leaves_the_teacher_as_it_was(method_class):
    task = mnist_shaped_task()
    guarded = without_training_inputs(task, method_class.name)
    with pytest.raises(TrainingInputRead):  # the guard holds: reading the training split would fail the fit
        next(iter(guarded.batches("train", task.recipe("student"), torch.Generator())))
    torch.manual_seed(0)
    teacher_net, student = LENET5_BN.build(task).eval(), LENET5_HALF.build(task)
    teacher = Teacher(guarded, teacher_net, method=method_class.name, needs="model", cached=False)
    method = method_class(guarded, [teacher], **TINY[method_class])
    method_class.validate_params(method.params)
    steps: list[int] = []
    context = TrainContext(task=guarded, model=student, role="student", recipe=task.recipe("student"), seed=0,
                           method=method, teachers=(teacher,), on_batch=lambda: steps.append(1))
    student_before, teacher_before = state(student), state(teacher_net)
    trained = method.fit(context)
    assert trained is student
    assert len(steps) == math.ceil(32 / 8)  # one epoch: as many synthetic images as the 32 training images
    assert any(not torch.equal(student_before[k], v) for k, v in trained.state_dict().items())
    after = teacher_net.state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in after), "the teacher's weights or statistics moved"
    assert not teacher_net.training


@pytest.mark.parametrize("method_class", [DAFL, DFAD], ids=lambda m: m.name)
def test_the_generator_methods_train_their_generator(method_class):
    task = mnist_shaped_task()
    guarded = without_training_inputs(task, method_class.name)
    torch.manual_seed(0)
    teacher_net, student = LENET5_BN.build(task).eval(), LENET5_HALF.build(task)
    teacher = Teacher(guarded, teacher_net, method=method_class.name, needs="model", cached=False)
    method = method_class(guarded, [teacher], **TINY[method_class])
    context = TrainContext(task=guarded, model=student, role="student", recipe=task.recipe("student"), seed=0,
                           method=method, teachers=(teacher,))
    rng = torch.get_rng_state()
    method.fit(context)
    torch.set_rng_state(rng)  # the generator fit builds first, initialised from the same draws
    eps = 0.8 if method_class is DAFL else 1e-5
    fresh = Generator(TINY[method_class]["latent_dim"], (1, 28, 28), eps=eps).state_dict()
    trained = method.generator.state_dict()
    assert fresh.keys() == trained.keys()
    assert not torch.equal(fresh["project.weight"], trained["project.weight"])


def test_sizes_that_are_not_whole_positive_numbers_and_negative_weights_are_refused():
    with pytest.raises(ValueError, match="student_steps must be an integer"):
        DFAD.validate_params({**DFAD.defaults, "student_steps": 0})
    with pytest.raises(ValueError, match="latent_dim must be an integer"):
        DAFL.validate_params({**DAFL.defaults, "latent_dim": 2.5})
    with pytest.raises(ValueError, match="inversion_iterations must be an integer"):
        DeepInversion.validate_params({**DeepInversion.defaults, "inversion_iterations": True})
    with pytest.raises(ValueError, match="T must be positive"):
        NoiseKD.validate_params({**NoiseKD.defaults, "T": 0.0})
    with pytest.raises(ValueError, match="ie must be zero or positive"):
        DAFL.validate_params({**DAFL.defaults, "ie": -1.0})
    with pytest.raises(ValueError, match="jitter"):
        DeepInversion.validate_params({**DeepInversion.defaults, "jitter": 1.5})


# --- models and suite ---------------------------------------------------------------------


def lenet_parameters(c1: int, c2: int, c3: int, hidden: int, batch_norm: bool) -> int:
    """Weights (and biases, or BatchNorm's two per channel) of the three 5×5 convolutions and two linear layers."""
    per_channel = 2 if batch_norm else 1  # BatchNorm's scale and shift replace the bias
    convs = sum(25 * a * b + per_channel * b for a, b in ((1, c1), (c1, c2), (c2, c3)))
    return convs + (c3 * hidden + hidden) + (hidden * 10 + 10)


@pytest.mark.parametrize("spec, widths, batch_norm", [(LENET5_BN, (6, 16, 120, 84), True),
                                                      (LENET5_HALF, (3, 8, 60, 42), False)], ids=["bn", "half"])
def test_lenet_models_give_logits_and_named_features_on_28_by_28_digits(spec, widths, batch_norm):
    model = spec.build(mnist_shaped_task()).eval()
    out = model(randn(5, 1, 28, 28, seed=7))
    c1, c2, c3, _ = widths
    assert out.output.shape == (5, 10)
    assert set(out.features) == {"stage1", "stage2", "embedding"}
    assert out.features["stage1"].shape == (5, c1, 14, 14)  # 28 padded to 32, 5×5 conv → 28, pooled
    assert out.features["stage2"].shape == (5, c2, 5, 5)
    assert out.features["embedding"].shape == (5, c3)
    assert sum(p.numel() for p in model.parameters()) == lenet_parameters(*widths, batch_norm)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == batch_norm


def test_the_teacher_trains_as_dafls_teacher_train_py_trains_it_whatever_the_task_default():
    task = mnist_shaped_task()
    teacher_default = Recipe(epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, schedule="cosine")
    recipe = teacher_default.updated(LENET5_BN.recipe)  # the plan applies a spec's recipe over the task's
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.schedule) == ("adam", 1e-3, 256, "constant")
    assert recipe.epochs == 10 and recipe.weight_decay == 0.0
    assert LENET5_HALF.recipe == {}  # the student trains by the suite's recipe alone
    LENET5_BN.build(task)


def test_lenet_refuses_inputs_it_cannot_pad_to_32():
    x = torch.zeros(4, 1, 36, 36)
    task = ClassificationTask({"train": (x, torch.zeros(4, dtype=torch.long))}, 10,
                              {"teacher": mnist_shaped_task().recipe("teacher")})
    with pytest.raises(IncompatibleCombination, match="up to 32"):
        LENET5_HALF.build(task)


def test_the_datafree_mnist_suite_validates_with_every_method_and_three_seeds():
    suite = load_suite(REPO / "suites" / "datafree-mnist.yaml", Registry.load())
    named = {entry.name for case in suite.all_cases() for entry in case.methods}
    assert named == {"kd", "kd-noise", "dafl", "dfad", "deepinversion"}
    assert all(case.seeds == [0, 1, 2] for case in suite.all_cases())
    assert {anchor.method for anchor in suite.paper} == {"teacher", "kd-noise", "dafl"}
