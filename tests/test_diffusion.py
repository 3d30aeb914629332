"""The diffusion plugin: the noise process against diffusers, distances against closed forms, and
progressive and consistency distillation on the 2-D toy, where the data density is known."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
from kdbench_diffusion import DENOISING
from kdbench_diffusion.classifier import DigitClassifier
from kdbench_diffusion.columns import fd_columns
from kdbench_diffusion.consistency import Consistency, consistency_function
from kdbench_diffusion.ddim_n import DDIMN
from kdbench_diffusion.frechet import Coordinates, SampleQuality
from kdbench_diffusion.progressive import progressive_loss, stage_gap
from kdbench_diffusion.sampling import Sampler
from kdbench_diffusion.schedule import TIMESTEPS, alpha_sigma, ddim_scheduler, ddim_step, grid, predict_x0
from kdbench_diffusion.task import DenoisingTask
from kdbench_diffusion.toy import PointDenoiser, build_toy, centres, nll
from torch import nn

from kdbench import Column, ModelOutput, Recipe, Teacher, TrainContext, UserError, train

TEACHER_EPOCHS = 40


@pytest.fixture(scope="module")
def toy() -> DenoisingTask:
    return build_toy(samples=1000, train_size=4096, test_size=4096)


@pytest.fixture(scope="module")
def toy_teacher(toy: DenoisingTask) -> nn.Module:
    """A point denoiser trained through the generic loop, as a teacher run trains it (a few seconds)."""
    torch.manual_seed(0)
    recipe = toy.recipe("teacher").updated({"epochs": TEACHER_EPOCHS})
    return train(TrainContext(task=toy, model=PointDenoiser(), role="teacher", recipe=recipe, seed=0))


def fixed_noise(n: int, shape: tuple[int, ...] = (2,), seed: int = 99) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------
# the noise process
# ----------------------------------------------------------------------------------------


def test_v_prediction_of_the_true_velocity_recovers_the_clean_sample():
    x0, eps = fixed_noise(16, seed=1), fixed_noise(16, seed=2)
    t = torch.randint(0, TIMESTEPS, (16,), generator=torch.Generator().manual_seed(3))
    alpha, sigma = alpha_sigma(t, x0)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones_like(alpha))
    v = alpha * eps - sigma * x0
    assert torch.allclose(predict_x0(alpha * x0 + sigma * eps, v, t), x0, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 8, 64])
def test_batched_ddim_step_is_diffusers_ddim_on_the_same_grid(steps: int):
    scheduler = ddim_scheduler(steps)
    assert scheduler.timesteps.tolist() == grid(steps).tolist()
    x, v = fixed_noise(4, (1, 4, 4), seed=5), fixed_noise(4, (1, 4, 4), seed=6)
    for t in scheduler.timesteps:
        ours = ddim_step(x, v, t.expand(4), (t - TIMESTEPS // steps).expand(4))
        theirs = scheduler.step(v, t, x).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-5)
        x = theirs


def test_progressive_target_lands_one_student_step_on_two_teacher_steps():
    """With x̂ = x̃, one DDIM step from z_t reaches the teacher's z_t'' exactly (the paper's eq. for x̃)."""

    class Linear(nn.Module):  # any fixed network will do as the teacher
        def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
            return ModelOutput(0.3 * x_t + t[:, None].float() / TIMESTEPS, {})

    class Perfect(nn.Module):  # predicts the v whose x-prediction is the target, given the teacher
        def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
            delta = TIMESTEPS // 4
            middle = ddim_step(x_t, teacher(x_t, t).output, t, t - delta // 2)
            after = ddim_step(middle, teacher(middle, t - delta // 2).output, t - delta // 2, t - delta)
            alpha, sigma = alpha_sigma(t, x_t)
            alpha_after, sigma_after = alpha_sigma(t - delta, x_t)
            ratio = sigma_after / sigma
            target = (after - ratio * x_t) / (alpha_after - ratio * alpha)
            return ModelOutput((alpha * x_t - target) / sigma, {})  # x0 = α x_t − σ v solved for v

    teacher = Linear()
    noise = fixed_noise(32)
    assert stage_gap(teacher, Perfect(), 4, noise) < 1e-8
    assert stage_gap(teacher, teacher, 4, noise) > 1e-3  # the teacher at half its steps does not


# ----------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------


def test_frechet_distance_is_zero_on_itself_and_the_squared_shift_when_shifted():
    points = fixed_noise(2000) @ torch.tensor([[1.0, 0.4], [0.0, 0.7]])
    quality = SampleQuality(points, Coordinates(2))
    assert quality(points)["fd"] == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([0.3, -1.2])
    assert quality(points + shift)["fd"] == pytest.approx(float(shift.pow(2).sum()), rel=1e-5)


def test_frechet_distance_between_gaussian_samples_follows_the_closed_form():
    """‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2(C₁C₂)^½) = ‖μ‖² + d(1 − s)² for N(0, I) against N(μ, s²I)."""
    mean, scale = torch.tensor([1.0, 0.5]), 2.0
    quality = SampleQuality(fixed_noise(20_000, seed=11), Coordinates(2))
    measured = quality(mean + scale * fixed_noise(20_000, seed=12))["fd"]
    assert measured == pytest.approx(float(mean.pow(2).sum()) + 2 * (1 - scale) ** 2, rel=0.03)
    assert quality(fixed_noise(20_000, seed=13))["kid"] == pytest.approx(0.0, abs=0.01)


def test_toy_likelihood_is_the_mixture_density():
    point = centres()[3:4]  # on a mode: the others are ≥ 1.5 away, so contribute nothing
    assert float(nll(point)) == pytest.approx(math.log(8) + math.log(2 * math.pi * 0.01), abs=1e-6)


def test_feature_network_stays_frozen_while_it_evaluates():
    class Zero(nn.Module):  # predicts v = 0: a cheap sampler
        def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> ModelOutput:
            return ModelOutput(torch.zeros_like(x_t), {})

    torch.manual_seed(0)
    classifier = DigitClassifier()
    before = copy.deepcopy(classifier.state_dict())
    images = fixed_noise(64, (1, 32, 32)).clamp(-1, 1)
    recipe = Recipe(epochs=1, batch_size=8, optimizer="adam", lr=1e-3)
    task = DenoisingTask(images, images, SampleQuality(images, classifier), lambda x: {}, {"teacher": recipe},
                         samples=32, steps=[1], primary_steps=1, teacher_steps=2)
    classifier.train()  # whoever holds it, evaluation must not train it
    metrics = task.evaluate(Sampler(Zero(), "ddim", (1,)), "test", "student")
    assert set(metrics) >= {"fd", "kid", "fd_n1", "kid_n1", "sample_ms_n1"}
    assert all(DENOISING.metric(name) is not None for name in metrics), "every logged metric has a direction"
    assert not classifier.training
    assert all(not p.requires_grad for p in classifier.parameters())
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())


# ----------------------------------------------------------------------------------------
# the task and its samplers
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"steps": [1, 3]}, {"primary_steps": 2, "steps": [1, 4]},
                                     {"teacher_steps": 8, "steps": [1, 8]}])
def test_step_counts_that_cannot_be_evaluated_are_user_errors(options):
    with pytest.raises(UserError):
        build_toy(**{"steps": [1, 2], "primary_steps": 1, **options})


def test_one_step_consistency_sampling_is_the_trained_consistency_function():
    torch.manual_seed(0)
    network, noise = PointDenoiser(), fixed_noise(16)
    sampled = Sampler(network, "consistency", (1,), grid=32).sample(noise, 1)
    assert torch.allclose(sampled, consistency_function(network, noise, torch.full((16,), TIMESTEPS - 1)), atol=1e-6)
    clean = fixed_noise(16, seed=4)  # the boundary condition: f is the identity on clean data
    assert torch.equal(consistency_function(network, clean, torch.full((16,), -1)), clean)


def test_teacher_64_step_samples_are_far_closer_to_the_data_than_noise(toy: DenoisingTask, toy_teacher: nn.Module):
    metrics = toy.evaluate(toy_teacher, "test", "teacher")
    noise = fixed_noise(1000)
    assert metrics["steps"] == 64 and metrics["fd"] == metrics["fd_n64"]
    assert metrics["fd"] < toy.quality(noise)["fd"] / 20
    assert metrics["nll_n64"] < float(nll(noise).mean()) / 3
    assert all(DENOISING.metric(name) is not None for name in metrics), "every logged metric has a direction"
    assert not DENOISING.metric("nll_n64").higher_is_better and not DENOISING.metric("fd_n64").higher_is_better


def test_progressive_student_one_step_matches_its_teacher_two_steps(toy: DenoisingTask, toy_teacher: nn.Module):
    student, noise = copy.deepcopy(toy_teacher), fixed_noise(512)
    before = stage_gap(toy_teacher, student, 1, noise)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(student.parameters(), lr=5e-4)
    for _ in range(300):
        loss = progressive_loss(toy_teacher, student, 1, toy.train[torch.randint(0, 4096, (256,))], generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = stage_gap(toy_teacher, student, 1, noise)
    assert after < before / 5
    assert after < 0.02  # mean squared distance, on data of variance ≈ 2


def test_consistency_one_step_beats_the_teacher_at_one_ddim_step(toy: DenoisingTask, toy_teacher: nn.Module):
    def fit(method: type, **params) -> nn.Module:
        handle = Teacher(toy, toy_teacher, method=method.name, needs=method.needs, cached=False)
        return train(TrainContext(task=toy, model=PointDenoiser(), role="student", recipe=toy.recipe("student"),
                                  seed=0, method=method(toy, [handle], **params), teachers=(handle,)))

    baseline, distilled = fit(DDIMN), fit(Consistency, iterations=300)
    assert baseline.network is toy_teacher and baseline.steps == (1, 2, 4, 8)
    one_step = {name: toy.quality(toy.draw(model, 1))["fd"] for name, model in
                [("ddim", baseline), ("consistency", distilled)]}
    assert one_step["consistency"] < one_step["ddim"] / 4


# ----------------------------------------------------------------------------------------
# leaderboard columns
# ----------------------------------------------------------------------------------------


def test_fd_columns_give_mean_and_std_per_step_count():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "test_steps": [4, 4, 64],
                         "test_fd_n1": [1.0, 3.0, None], "test_fd_n64": [None, None, 0.5],
                         "test_kid_n4": [10.0, 20.0, None], "test_kid_n64": [None, None, 2.0],
                         "test_sample_ms_n4": [5.0, 7.0, None]})
    rows = pd.DataFrame({"run_ids": [["a", "b"], ["c"]], "status": ["ok", "ok"]})
    columns = fd_columns(runs, rows)
    assert {column.header: values for column, values in columns} == {
        "N": ["4", "64"], "fd n1": ["2 ± 1.4", ""], "fd n64": ["", "0.5"],
        "kid": ["15 ± 7.1", "2"], "confidence": ["", ""], "ms/sample": ["6 ± 1.4", ""]}
    assert all(isinstance(column, Column) and column.optional for column, _ in columns)
    first, second = (rows.assign(**{column.key: values for column, values in columns}).iloc[i] for i in (0, 1))
    assert [column.cell(first) for column, _ in columns] == ["4", "2 ± 1.4", "", "15 ± 7.1", "", "6 ± 1.4"]
    assert [column.cell(second) for column, _ in columns] == ["64", "", "0.5", "2", "", ""]
    notes = [column.footnote for column, _ in columns if column.footnote]
    assert len(notes) == 5 and notes[1].startswith("fd nN = ")  # one note for every fd n column
    assert fd_columns(runs.drop(columns=["test_fd_n1", "test_fd_n64"]), rows) is None


def test_fd_against_steps_plots_each_row_mean_over_seeds_and_the_teacher_level():
    from kdbench_diffusion.steps_plot import fd_against_steps

    runs = pd.DataFrame({"run_id": ["t0", "t1", "p0", "p1"],
                         "test_fd_n1": [None, None, 40.0, 60.0], "test_fd_n4": [None, None, 10.0, 20.0],
                         "test_fd_n64": [5.0, 7.0, None, None]})
    rows = pd.DataFrame({"method": ["teacher", "progressive"], "role": ["teacher", "method"],
                         "status": ["ok", "ok"], "run_ids": [["t0", "t1"], ["p0", "p1"]]})
    [(name, caption, figure)] = fd_against_steps(runs, rows)
    axis = figure.axes[0]
    lines = {bars.get_label(): bars.lines[0] for bars in axis.containers}  # errorbar: (data line, caps, bars)
    assert name == "fd-vs-steps" and "teacher" in caption
    assert list(lines["progressive"].get_xdata()) == [1, 4]
    assert list(lines["progressive"].get_ydata()) == pytest.approx([50.0, 15.0])
    assert list(lines["teacher (64 steps)"].get_ydata()) == pytest.approx([6.0])
    assert axis.get_xscale() == axis.get_yscale() == "log"
    assert fd_against_steps(runs[["run_id"]], rows) is None


def test_mnist_is_padded_to_32_pixels_in_minus_one_to_one(require_data):
    from kdbench_diffusion.mnist import load_split

    require_data("mnist", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    images, labels = load_split("t10k")
    assert images.shape == (10_000, 1, 32, 32) and labels.shape == (10_000,)
    assert float(images.min()) == -1.0 and float(images.max()) == 1.0
    border = torch.cat([images[..., :2, :].flatten(), images[..., -2:, :].flatten(),
                        images[..., :, :2].flatten(), images[..., :, -2:].flatten()])
    assert bool((border == -1.0).all())


def test_sample_grid_is_an_8_by_8_png_and_toy_points_are_not_drawn() -> None:
    import io

    from kdbench_diffusion.grids import grid_png
    from PIL import Image

    png = grid_png(torch.rand(70, 1, 32, 32) * 2 - 1)
    image = Image.open(io.BytesIO(png))
    assert image.size == (8 * 32 + 9 * 2, 8 * 32 + 9 * 2)  # torchvision pads 2 pixels around every tile
    assert grid_png(torch.randn(100, 2)) is None
