"""The CIFAR-100 model zoo of CRD/RepDistiller: sizes, named features and their shapes, init, roles, refusals.

Expected sizes are derived here from each architecture's description (RepDistiller's ``models/`` folder), layer by
layer, not read off our modules; where a paper publishes a size for the same network on CIFAR-100 it is checked too.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from kdbench_cifar import models
from torch import nn

from kdbench import IncompatibleCombination, ModelSpec

SPECS = {spec.name: spec for spec in (*models.TEACHERS, *models.STUDENTS)}
REQUIRED = ("resnet8x4", "resnet32x4", "resnet20", "resnet56", "resnet110", "wrn_40_2", "wrn_16_2", "wrn_40_1",
            "vgg13", "vgg8", "MobileNetV2", "ShuffleNetV1", "ShuffleNetV2")


def task(input_shape: tuple[int, ...] = (3, 32, 32), classes: int = 100) -> SimpleNamespace:
    return SimpleNamespace(kind="classification", inputs={"teacher": "x", "student": "x"},
                           info={"input_shape": input_shape, "num_classes": classes})


def count(spec: ModelSpec, classes: int = 100) -> int:
    return sum(p.numel() for p in spec.build(task(classes=classes)).parameters())


# --- sizes from the architecture formulas ----------------------------------------------------------------------
# conv: k·k·cin·cout/groups weights (+ cout with a bias); BN: a scale and a shift per channel; linear: in·out + out.


def conv(cin: int, cout: int, k: int = 1, groups: int = 1, bias: bool = False) -> int:
    return k * k * cin * cout // groups + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def resnet_size(depth: int, widths: tuple[int, int, int, int], classes: int) -> int:
    """3×3 stem + BN; (depth-2)/6 basic blocks (two 3×3 conv+BN) per stage, a 1×1 conv+BN shortcut where the
    width or the resolution changes; linear head."""
    n = (depth - 2) // 6
    total, cin = conv(3, widths[0], 3) + bn(widths[0]), widths[0]
    for stage, cout in enumerate(widths[1:]):
        for i in range(n):
            projects = i == 0 and (stage > 0 or cin != cout)
            total += conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
            total += conv(cin, cout) + bn(cout) if projects else 0
            cin = cout
    return total + linear(cin, classes)


def wrn_size(depth: int, k: int, classes: int) -> int:
    """3×3 stem (no BN); (depth-4)/6 pre-activation blocks (BN, 3×3, BN, 3×3) per stage, a bias-free 1×1 shortcut
    where the width changes; a final BN and the linear head."""
    n = (depth - 4) // 6
    total, cin = conv(3, 16, 3), 16
    for cout in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += bn(cin) + conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3)
            total += conv(cin, cout) if cin != cout else 0
            cin = cout
    return total + bn(cin) + linear(cin, classes)


def vgg_size(cfg: tuple[tuple[int, ...], ...], classes: int) -> int:
    """3×3 convs with bias, each followed by BN; one linear layer on the 512 pooled channels."""
    total, cin = 0, 3
    for block in cfg:
        for cout in block:
            total += conv(cin, cout, 3, bias=True) + bn(cout)
            cin = cout
    return total + linear(cin, classes)


def mobilenetv2_half_size(classes: int) -> int:
    """Width 0.5: stride-2 3×3 stem to 16; inverted residuals (1×1 expand ×t, depthwise 3×3, 1×1 project, each
    with BN) with output channels half of MobileNetV2's 16, 24, 32, 64, 96, 160, 320; 1×1 to 1280; linear."""
    groups = ((1, 8, 1), (6, 12, 2), (6, 16, 3), (6, 32, 4), (6, 48, 3), (6, 80, 3), (6, 160, 1))
    total, cin = conv(3, 16, 3) + bn(16), 16
    for t, cout, n in groups:
        for _ in range(n):
            hidden = cin * t
            total += conv(cin, hidden) + bn(hidden) + conv(hidden, hidden, 3, groups=hidden) + bn(hidden)
            total += conv(hidden, cout) + bn(cout)
            cin = cout
    return total + conv(cin, 1280) + bn(1280) + linear(1280, classes)


def shufflenetv1_size(classes: int) -> int:
    """1×1 stem to 24; stages of 4, 8, 4 bottlenecks to 240, 480, 960 channels with g = 3: grouped 1×1 to a quarter
    of the branch (ungrouped from the 24-channel stem), depthwise 3×3, grouped 1×1; the first block of a stage
    concatenates a pooled shortcut, so its branch makes only the new channels."""
    total, cin = conv(3, 24) + bn(24), 24
    for cout, n in ((240, 4), (480, 8), (960, 4)):
        for i in range(n):
            branch = cout - cin if i == 0 else cout
            mid = branch // 4
            total += conv(cin, mid, groups=1 if cin == 24 else 3) + bn(mid)
            total += conv(mid, mid, 3, groups=mid) + bn(mid) + conv(mid, branch, groups=3) + bn(branch)
            cin = cout
    return total + linear(cin, classes)


def shufflenetv2_size(classes: int) -> int:
    """1×1 stem to 24; stages to 116, 232, 464 channels, each a down block (two branches of half the output) then
    3, 7, 3 basic blocks (1×1, depthwise 3×3, 1×1 on half the channels), all with BN; 1×1 to 1024; linear."""
    total, cin = conv(3, 24) + bn(24), 24
    for cout, n in ((116, 3), (232, 7), (464, 3)):
        m = cout // 2
        total += conv(cin, cin, 3, groups=cin) + bn(cin) + conv(cin, m) + bn(m)  # left branch
        total += conv(cin, m) + bn(m) + conv(m, m, 3, groups=m) + bn(m) + conv(m, m) + bn(m)  # right branch
        total += n * (conv(m, m) + bn(m) + conv(m, m, 3, groups=m) + bn(m) + conv(m, m) + bn(m))
        cin = cout
    return total + conv(cin, 1024) + bn(1024) + linear(1024, classes)


VGG13 = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))
VGG8 = ((64,), (128,), (256,), (512,), (512,))
SIZES = {
    "resnet8x4": lambda k: resnet_size(8, (32, 64, 128, 256), k),
    "resnet32x4": lambda k: resnet_size(32, (32, 64, 128, 256), k),
    "resnet20": lambda k: resnet_size(20, (16, 16, 32, 64), k),
    "resnet32": lambda k: resnet_size(32, (16, 16, 32, 64), k),
    "resnet56": lambda k: resnet_size(56, (16, 16, 32, 64), k),
    "resnet110": lambda k: resnet_size(110, (16, 16, 32, 64), k),
    "wrn_40_2": lambda k: wrn_size(40, 2, k),
    "wrn_16_2": lambda k: wrn_size(16, 2, k),
    "wrn_40_1": lambda k: wrn_size(40, 1, k),
    "vgg13": lambda k: vgg_size(VGG13, k),
    "vgg8": lambda k: vgg_size(VGG8, k),
    "MobileNetV2": mobilenetv2_half_size,
    "ShuffleNetV1": shufflenetv1_size,
    "ShuffleNetV2": shufflenetv2_size,
}


def test_the_zoo_has_every_model_once_with_its_role():
    assert set(REQUIRED) <= set(SPECS) and set(SPECS) == set(SIZES)
    assert [s.name for s in models.TEACHERS] == ["resnet32x4", "resnet56", "resnet110", "wrn_40_2", "vgg13"]
    assert len(SPECS) == len(models.TEACHERS) + len(models.STUDENTS)  # no name twice; CRD uses none in both roles
    for name in REQUIRED:
        assert getattr(models, name) is SPECS[name]
        assert SPECS[name].kinds == ("classification",) and SPECS[name].modalities == ("vision",)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_sizes_follow_the_architecture(name):
    for classes in (100, 10):
        assert count(SPECS[name], classes) == SIZES[name](classes)


def test_sizes_match_published_counts():
    # Heo et al., "A Comprehensive Overhaul of Feature Distillation" (ICCV 2019), CIFAR-100 settings table
    # (clovaai/overhaul-distillation, CIFAR-100/README.md): WRN 16-2 0.70M, ResNet 56 0.86M, with the same
    # blocks and 1×1-conv shortcuts as RepDistiller's. Published to two decimals: within half a unit of the last.
    assert count(models.wrn_16_2) / 1e6 == pytest.approx(0.70, abs=0.005)
    assert count(models.resnet56) / 1e6 == pytest.approx(0.86, abs=0.005)


# --- features --------------------------------------------------------------------------------------------------

RESNET = {"stem": (16, 32, 32), "stage1": (16, 32, 32), "stage2": (32, 16, 16), "stage3": (64, 8, 8)}
RESNET_X4 = {"stem": (32, 32, 32), "stage1": (64, 32, 32), "stage2": (128, 16, 16), "stage3": (256, 8, 8)}
VGG = {"stem": (64, 32, 32), "stage1": (128, 16, 16), "stage2": (256, 8, 8), "stage3": (512, 4, 4),
       "stage4": (512, 4, 4)}


def wrn(k: int) -> dict[str, tuple[int, int, int]]:
    return {"stem": (16, 32, 32), "stage1": (16 * k, 32, 32), "stage2": (32 * k, 16, 16), "stage3": (64 * k, 8, 8)}


# (C, H, W) of every map, and the embedding's width: ResNets/WRNs keep 32 pixels in stage 1 and halve twice;
# VGG pools before blocks 1-3 and runs its last two blocks at 4×4; MobileNetV2's stem is stride 2 and its four
# stages are the outputs of groups 2, 3, 5, 7 (the channels mdistiller's ReviewKD config lists for it, 12, 16, 48,
# 160, 1280: megvii-research/mdistiller issue #39); ShuffleNets halve in each stage from a full-size 1×1 stem.
SHAPES = {
    "resnet8x4": (RESNET_X4, 256), "resnet32x4": (RESNET_X4, 256),
    "resnet20": (RESNET, 64), "resnet32": (RESNET, 64), "resnet56": (RESNET, 64), "resnet110": (RESNET, 64),
    "wrn_40_2": (wrn(2), 128), "wrn_16_2": (wrn(2), 128), "wrn_40_1": (wrn(1), 64),
    "vgg13": (VGG, 512), "vgg8": (VGG, 512),
    "MobileNetV2": ({"stem": (16, 16, 16), "stage1": (12, 16, 16), "stage2": (16, 8, 8), "stage3": (48, 4, 4),
                     "stage4": (160, 2, 2)}, 1280),
    "ShuffleNetV1": ({"stem": (24, 32, 32), "stage1": (240, 16, 16), "stage2": (480, 8, 8),
                      "stage3": (960, 4, 4)}, 960),
    "ShuffleNetV2": ({"stem": (24, 32, 32), "stage1": (116, 16, 16), "stage2": (232, 8, 8),
                      "stage3": (464, 4, 4)}, 1024),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_models_return_logits_and_repdistillers_feature_maps(name):
    maps, width = SHAPES[name]
    model = SPECS[name].build(task()).eval()
    with torch.no_grad():
        logits, features = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    assert list(features) == [*maps, "embedding"]  # in RepDistiller's feat order
    assert {key: tuple(f.shape) for key, f in features.items() if key != "embedding"} == {
        key: (2, *shape) for key, shape in maps.items()}
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert features["embedding"].shape == (2, width) and head.in_features == width
    assert torch.allclose(head(features["embedding"]), logits, atol=1e-5)  # the classifier reads the embedding


def test_post_activation_stages_are_relu_outputs():
    # RepDistiller returns ResNet/ShuffleNet stages after their final ReLU; WRN stages are pre-activation sums.
    with torch.no_grad():
        _, resnet = models.resnet20.build(task()).eval()(torch.randn(2, 3, 32, 32))
        _, wide = models.wrn_16_2.build(task()).eval()(torch.randn(2, 3, 32, 32))
    assert all(resnet[k].min() >= 0 for k in ("stem", "stage1", "stage2", "stage3"))
    assert all(wide[k].min() < 0 for k in ("stem", "stage1", "stage2", "stage3"))


# --- init, recipes, refusals, state-dict names -------------------------------------------------------------------


def test_weight_init_is_repdistillers():
    torch.manual_seed(0)
    resnet, vgg, wide = (models.resnet32x4.build(task()), models.vgg13.build(task()), models.wrn_40_2.build(task()))
    # He-normal, fan-out: std sqrt(2 / (3·3·256)) over 590K weights
    assert resnet.layer3[1].conv1.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 256)), rel=0.03)
    assert vgg.classifier.weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert not vgg.classifier.bias.any() and not wide.fc.bias.any() and not vgg.block1[0].bias.any()
    for model in (resnet, vgg, wide):
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(bool((m.weight == 1).all() and not m.bias.any()) for m in norms)


def test_light_students_train_at_repdistillers_lower_rate():
    light = {"MobileNetV2", "ShuffleNetV1", "ShuffleNetV2"}
    assert all(SPECS[name].recipe == {"lr": 0.01} for name in light)
    assert all(SPECS[name].recipe == {} for name in set(SPECS) - light)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_single_channel_tasks_are_refused(name):
    grey = task(input_shape=(1, 28, 28), classes=10)
    with pytest.raises(IncompatibleCombination, match="3-channel"):
        SPECS[name].check(grey, "vision", "student")  # when the suite is planned
    with pytest.raises(IncompatibleCombination, match=r"input shape \(1, 28, 28\)"):
        SPECS[name].build(grey)
    SPECS[name].check(task(), "vision", "teacher")  # a CIFAR task passes


def test_state_dict_names_follow_repdistiller():
    # Names as RepDistiller's modules give them, so its checkpoints ({'model': state_dict}) load as saved.
    expected = [
        (models.resnet8x4, ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight",
                            "layer3.0.downsample.1.weight", "layer3.0.bn2.bias", "fc.weight")),
        (models.wrn_40_2, ("conv1.weight", "block1.layer.0.convShortcut.weight", "block3.layer.5.bn2.weight",
                           "bn1.weight", "fc.bias")),
        (models.vgg13, ("block0.0.weight", "block0.1.running_var", "block0.4.weight", "block4.3.bias",
                        "classifier.weight")),
        (models.MobileNetV2, ("conv1.0.weight", "blocks.6.0.conv.7.bias", "conv2.1.weight", "classifier.0.weight")),
        (models.ShuffleNetV1, ("layer1.0.conv1.weight", "layer3.3.bn3.bias", "linear.weight")),
        (models.ShuffleNetV2, ("layer1.0.conv5.weight", "layer2.7.bn3.bias", "conv2.weight", "linear.weight")),
    ]
    for spec, keys in expected:
        state = spec.build(task()).state_dict()
        assert set(keys) <= set(state), spec.name
    wrn_keys = models.wrn_40_1.build(task()).state_dict()
    assert "block1.layer.0.convShortcut.weight" not in wrn_keys  # 16 → 16: the identity shortcut
