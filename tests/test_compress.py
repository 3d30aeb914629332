"""The compress plugin: int8 students as small and as close to fp32 as stated, quantisation-aware
training computing what the conversion will, pruning removing the share of parameters asked; and the
transforms as a suite names them."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from kdbench_compress.prune import Pruned
from kdbench_compress.qat import FakeQuantLinear, Int8QAT
from kdbench_compress.quantize import Int8Dynamic
from kdbench_text.models import CharGPT
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, Recipe, call_model
from kdbench.errors import SuiteError
from kdbench.registry import Registry
from kdbench.transform import parse


@pytest.fixture(autouse=True)
def one_thread(isolated):
    """Nothing here is timed: one thread leaves the machine's other cores to whatever else runs."""
    torch.set_num_threads(1)


class MLP(nn.Module):
    def __init__(self, widths: list[int], classes: int) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(widths))
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = {}
        h = x
        for i, layer in enumerate(self.hidden, 1):
            h = features[f"stage{i}"] = layer(h)
        features["embedding"] = h
        return ModelOutput(self.head(h), features)


class CNN(nn.Module):
    def __init__(self, widths: tuple[int, int, int], classes: int) -> None:
        super().__init__()
        a, b, c = widths
        self.stage1 = nn.Sequential(nn.Conv2d(1, a, 3, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                                    nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(nn.Conv2d(b, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                    nn.MaxPool2d(2))
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        embedding = s3.mean(dim=(2, 3))
        return ModelOutput(self.head(embedding), {"stage1": s1, "stage2": s2, "stage3": s3, "embedding": embedding})


class FakeTask:
    """What the transforms read of a task: one input to trace and time."""

    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample
        self.info: dict = {}

    def latency_input(self, role: str) -> torch.Tensor:
        return self.sample


def hinton_mlp() -> MLP:
    torch.manual_seed(0)
    return MLP([784, 1200, 1200], 10)


def digits_batch() -> torch.Tensor:
    """A fixed batch in MNIST's range: pixels in [0, 1]."""
    return torch.rand(256, 784, generator=torch.Generator().manual_seed(1))


def stored_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue())


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return call_model(model.eval(), x).output


def test_int8_dynamic_is_a_quarter_of_the_size_and_close_to_fp32():
    model, x = hinton_mlp(), digits_batch()
    task = FakeTask(x[:1])
    quantised = Int8Dynamic().after_training(Int8Dynamic().before_training(model, task), task)
    assert type(model.head) is nn.Linear  # converted a copy, not the trained model
    # int8 weights are a quarter of fp32; the fp32 biases and the packing keep it just short of 4 (3.98 here)
    assert stored_bytes(model) / stored_bytes(quantised) >= 3.5
    fp32, int8 = logits(model, x), logits(quantised, x)
    # an untrained net's logits lie close together, the hardest case for the argmax: 99.2 % agree here
    assert (fp32.argmax(1) == int8.argmax(1)).float().mean() >= 0.98
    # each product is off by up to half a weight step (max|w|/255) and half an input step (range/254); the
    # logits move by 1.7 % of their largest magnitude here, bounded at 5 % for margin
    assert (fp32 - int8).abs().max() <= 0.05 * fp32.abs().max()


@pytest.mark.parametrize("transform", [Int8Dynamic(), Int8QAT()], ids=lambda t: t.label)
def test_int8_refuses_a_model_without_linear_layers_before_training(transform):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(IncompatibleCombination, match="no Linear layer to quantise"):
        transform.before_training(model, FakeTask(torch.rand(1, 1, 8, 8)))


def test_qat_keeps_the_state_dict_and_gradients():
    model = hinton_mlp()
    keys = list(model.state_dict())
    trained = Int8QAT().before_training(model, FakeTask(digits_batch()[:1]))
    assert list(trained.state_dict()) == keys
    assert all(type(m) is FakeQuantLinear for m in trained.modules() if isinstance(m, nn.Linear))
    output = trained(digits_batch())
    nn.functional.cross_entropy(output.output, torch.arange(256) % 10).backward()
    for name, parameter in trained.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_qat_layer_computes_what_its_int8_conversion_does():
    torch.manual_seed(2)
    layer, x = nn.Linear(784, 1200), digits_batch()
    fp32 = logits(layer, x)
    int8 = logits(Int8Dynamic().after_training(nn.Sequential(layer), None), x)
    layer.__class__ = FakeQuantLinear
    fake = logits(layer, x)
    # the same integer products, summed exactly by fbgemm and in float32 here: only float rounding differs
    # (6e-7 on outputs up to 1.5 here), where fp32 itself is 8e-3 away
    assert (fake - int8).abs().max() <= 1e-5 * int8.abs().max()
    assert (fp32 - int8).abs().max() > 1000 * (fake - int8).abs().max()


def test_qat_model_computes_what_its_int8_conversion_does():
    model, x = hinton_mlp(), digits_batch()
    task = FakeTask(x[:1])
    fp32 = logits(model, x)
    transform = Int8QAT()
    trained = transform.before_training(model, task)
    fake = logits(trained, x)
    int8 = logits(transform.after_training(trained, task), x)
    # a hidden value within float noise of a rounding boundary can round the other way in one of the two,
    # moving some logits by one step's worth: the mean is 1/2300 of fp32's distance here, the max 1/29
    assert (fake - int8).abs().mean() < (fp32 - int8).abs().mean() / 50
    assert (fake - int8).abs().max() < (fp32 - int8).abs().max() / 5
    assert (fake.argmax(1) == int8.argmax(1)).all()


def mlp() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(3)
    return MLP([64, 256, 256], 10), torch.rand(8, 64)


def cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(4)
    return CNN((32, 64, 128), 10), torch.rand(8, 1, 28, 28)


@pytest.mark.parametrize("sparsity", [0.3, 0.5])
@pytest.mark.parametrize("build", [mlp, cnn])
def test_pruning_removes_the_share_of_parameters_asked(build, sparsity):
    model, x = build()
    model.train()
    original, before = parameters(model), model(x)
    pruned = Pruned(sparsity).after_training(model, FakeTask(x[:1]))
    assert parameters(model) == original and model.training  # the trained model is left as it was
    assert abs(parameters(pruned) - (1 - sparsity) * original) <= 0.02 * (1 - sparsity) * original
    assert pruned.training
    after = pruned(x)
    assert after.output.shape == before.output.shape  # neither the classes nor the input are cut
    assert after.features.keys() == before.features.keys()
    assert after.features["embedding"].shape[1] < before.features["embedding"].shape[1]
    (after.output.sum() + sum(f.sum() for f in after.features.values())).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pruned.parameters())


def test_pruning_refuses_attention_before_training():
    model = CharGPT(vocabulary=65, context=16, width=32, depth=1, heads=2)
    with pytest.raises(IncompatibleCombination, match="torch-pruning cannot cut CharGPT's channels"):
        Pruned(0.5).before_training(model, FakeTask(torch.randint(0, 65, (1, 16))))


def test_pruned_students_fine_tune_for_half_their_epochs():
    recipe = Recipe(epochs=9, batch_size=32, lr=0.1, optimizer="adam")
    assert Pruned(0.5).fine_tune(recipe) == recipe.updated({"epochs": 4})
    assert Pruned(0.5).fine_tune(recipe.updated({"epochs": 1})).epochs == 1
    assert Int8Dynamic().fine_tune(recipe) is None and Int8QAT().fine_tune(recipe) is None


@pytest.fixture
def compress_only(entry_point_plugins, monkeypatch):
    """The compress plugin alone, through its entry point."""
    monkeypatch.setenv("KDBENCH_PLUGINS", "compress")


def test_registry_lists_the_transforms(compress_only):
    transforms = Registry.load().transforms
    assert transforms.names() == ["int8-dynamic", "int8-qat", "pruned"]
    assert {transforms.plugins[name] for name in transforms.names()} == {"compress"}


def test_a_suite_names_a_sparsity_after_a_dash(compress_only):
    classes = Registry.load().transforms.entries
    transform = parse("pruned-0.5", classes, "suite")
    assert isinstance(transform, Pruned) and transform.value == 0.5 and transform.label == "pruned-0.5"
    assert isinstance(parse("int8-dynamic", classes, "suite"), Int8Dynamic)


@pytest.mark.parametrize(("label", "message"), [
    ("pruned", "transform 'pruned' takes its sparsity after a dash"),
    ("pruned-1.5", "transform 'pruned-1.5': sparsity .* strictly between 0 and 1, not 1.5"),
    ("pruned-0", "strictly between 0 and 1, not 0.0"),
    ("int8-dynamik", "unknown transform 'int8-dynamik'; did you mean 'int8-dynamic'"),
])
def test_a_suite_naming_a_transform_wrongly_is_told_why(compress_only, label, message):
    with pytest.raises(SuiteError, match=message):
        parse(label, Registry.load().transforms.entries, "suite")
