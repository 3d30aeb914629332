"""The CIFAR-100 model zoo of CRD (Tian, Krishnan & Isola, ICLR 2020), built as RepDistiller builds it.

Each architecture follows HobbitLong/RepDistiller's ``models/`` folder (resnet.py, wrn.py, vgg.py,
mobilenetv2.py, ShuffleNetv1.py, ShuffleNetv2.py) in widths, depths, BN/ReLU placement and weight
init, so that the CRD tables' teacher/student pairs mean the same networks here. Module names also
follow RepDistiller's, so that its state dicts (its published CIFAR-100 teachers) can load without renaming.

Features are named after the positions of RepDistiller's ``is_feat=True`` list (``preact=False``), which
its methods index: ``stem`` = feat[0], ``stage1..N`` = feat[1..N], ``embedding`` = feat[-1], the pooled
vector the classifier reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, ModelSpec, Task


def _conv3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def _conv1(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, 0, groups=groups, bias=False)


def _init(model: nn.Module, linear_std: float | None = None, linear_bias_zero: bool = False) -> nn.Module:
    """RepDistiller's init: He-normal convs (fan-out), BN as identity; the linear layer as each file sets it
    (``linear_std=None`` keeps PyTorch's default weights)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if linear_bias_zero or linear_std is not None:
                nn.init.zeros_(m.bias)
    return model


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling: what RepDistiller's fixed-size pools (8×8, 4×4, 2×2) do on 32×32 inputs."""
    return x.mean(dim=(2, 3))


def _three_stages(stem: torch.Tensor, stages: tuple[nn.Module, ...]) -> dict[str, torch.Tensor]:
    """The stem's map and each stage's output in turn, named as RepDistiller's feature list orders them."""
    features = {"stem": stem}
    for number, stage in enumerate(stages, start=1):
        features[f"stage{number}"] = stem = stage(stem)
    return features


# --- CIFAR ResNets (He et al. 2016): resnet20/56/110 and the 4×-wide resnet8x4/32x4 -------------------------


class BasicBlock(nn.Module):
    """Post-activation residual block; a 1×1 conv+BN projects the shortcut where the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(_conv1(cin, cout, stride), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    """A 3×3 stem then three stages of (depth-2)/6 basic blocks at 32, 16 and 8 pixels."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2, not {depth}")
        n = (depth - 2) // 6
        self.conv1 = _conv3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, cin = [], widths[0]
        for width, stride in zip(widths[1:], (1, 2, 2), strict=True):
            stages.append(nn.Sequential(*(BasicBlock(cin if i == 0 else width, width, stride if i == 0 else 1)
                                          for i in range(n))))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[3], classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = _three_stages(F.relu(self.bn1(self.conv1(x))), (self.layer1, self.layer2, self.layer3))
        features["embedding"] = _pool(features["stage3"])
        return ModelOutput(self.fc(features["embedding"]), features)


# --- Wide ResNets (Zagoruyko & Komodakis 2016): wrn_40_2, wrn_16_2, wrn_40_1 ---------------------------------


class WideBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv twice); where the width changes, the shortcut is a 1×1 conv of the
    activated input, otherwise the raw input."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3(cout, cout)
        self.convShortcut = _conv1(cin, cout, stride) if cin != cout else None  # RepDistiller's name, for loading

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + (x if self.convShortcut is None else self.convShortcut(a))


class WideStage(nn.Module):
    """A stage of wide blocks, wrapped once more (``block1.layer``) as in RepDistiller, for its state dicts."""

    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """A 16-channel 3×3 stem, three stages of (depth-4)/6 blocks of width 16k, 32k, 64k, then BN-ReLU-pool.

    Pre-activation: the stem and stage outputs are sums before any BN/ReLU, as RepDistiller returns them."""

    def __init__(self, depth: int, widen: int, classes: int) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a wide ResNet has depth 6n+4, not {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = _conv3(3, widths[0])
        self.block1 = WideStage(n, widths[0], widths[1], 1)
        self.block2 = WideStage(n, widths[1], widths[2], 2)
        self.block3 = WideStage(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], classes)
        _init(self, linear_bias_zero=True)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = _three_stages(self.conv1(x), (self.block1, self.block2, self.block3))
        features["embedding"] = _pool(F.relu(self.bn1(features["stage3"])))
        return ModelOutput(self.fc(features["embedding"]), features)


# --- VGG with BatchNorm and no FC stack (RepDistiller's vgg13 = vgg13_bn, vgg8 = vgg8_bn) -----------------------

VGG13_CFG = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))
VGG8_CFG = ((64,), (128,), (256,), (512,), (512,))


class VGG(nn.Module):
    """Five blocks of 3×3 conv(with bias)-BN-ReLU; max-pools between the first four, a global pool and one
    linear layer at the end. At 32 pixels the last two blocks both run at 4×4 (RepDistiller pools before the
    fifth block only for 64-pixel inputs)."""

    def __init__(self, cfg: tuple[tuple[int, ...], ...], classes: int) -> None:
        super().__init__()
        blocks, cin = [], 3
        for widths in cfg:
            layers: list[nn.Module] = []
            for width in widths:
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
                cin = width
            blocks.append(nn.Sequential(*layers))
        self.block0, self.block1, self.block2, self.block3, self.block4 = blocks
        self.classifier = nn.Linear(cin, classes)
        _init(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        big = x.shape[-2] == 64
        stem = self.block0(x)
        s1 = self.block1(F.max_pool2d(stem, 2))
        s2 = self.block2(F.max_pool2d(s1, 2))
        s3 = self.block3(F.max_pool2d(s2, 2))
        s4 = self.block4(F.max_pool2d(s3, 2) if big else s3)
        embedding = _pool(s4)
        return ModelOutput(self.classifier(embedding), {"stem": stem, "stage1": s1, "stage2": s2, "stage3": s3,
                                                        "stage4": s4, "embedding": embedding})


# --- MobileNetV2 at width 0.5 (RepDistiller's mobile_half, from the RCO paper) -------------------------------


class InvertedResidual(nn.Module):
    """1×1 expand (always present, even at expansion 1), 3×3 depthwise, linear 1×1 project; ReLU, not ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.conv = nn.Sequential(_conv1(cin, hidden), nn.BatchNorm2d(hidden), nn.ReLU(),
                                  _conv3(hidden, hidden, stride, groups=hidden), nn.BatchNorm2d(hidden), nn.ReLU(),
                                  _conv1(hidden, cout), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


MOBILENETV2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))
"""(expansion, channels at width 1, blocks, first stride) per group: RepDistiller's T=6 for all groups but the first."""


class MobileNetV2Net(nn.Module):
    """A stride-2 stem, seven groups of inverted residuals at ``width`` × the channels, a 1×1 conv to 1280
    (not scaled below width 1) and one linear layer. RepDistiller's feature list takes the outputs of groups
    2, 3, 5 and 7 as its four stages (16, 8, 4, 2 pixels)."""

    STAGE_ENDS = (1, 2, 4, 6)

    def __init__(self, classes: int, width: float = 0.5) -> None:
        super().__init__()
        cin = int(32 * width)
        self.conv1 = nn.Sequential(_conv3(3, cin, 2), nn.BatchNorm2d(cin), nn.ReLU())
        self.blocks = nn.ModuleList()
        for expand, channels, n, stride in MOBILENETV2_SETTING:
            cout = int(channels * width)
            group = []
            for i in range(n):
                group.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
            self.blocks.append(nn.Sequential(*group))
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(_conv1(cin, last), nn.BatchNorm2d(last), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(last, classes))
        _init(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = self.conv1(x)
        features = {"stem": out}
        for i, group in enumerate(self.blocks):
            out = group(out)
            if i in self.STAGE_ENDS:
                features[f"stage{self.STAGE_ENDS.index(i) + 1}"] = out
        features["embedding"] = _pool(self.conv2(out))
        return ModelOutput(self.classifier(features["embedding"]), features)


# --- ShuffleNet V1 (g = 3) and V2 (1×), CIFAR variants with a 1×1 stem and no stem downsampling ---------------


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel shuffle: interleave the channels of ``groups`` groups so the next grouped conv mixes them."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Block(nn.Module):
    """Grouped 1×1, shuffle, depthwise 3×3, grouped 1×1; at stride 2 the shortcut is a 3×3 average pool
    concatenated to the branch (so the branch makes ``cout - cin`` channels), else added. The first block after
    the 24-channel stem uses an ungrouped first 1×1, as ShuffleNet does."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        branch = cout - cin if stride == 2 else cout
        mid = branch // 4
        self.first_groups = 1 if cin == 24 else groups
        self.conv1 = _conv1(cin, mid, groups=self.first_groups)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = _conv3(mid, mid, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv1(mid, branch, groups=groups)
        self.bn3 = nn.BatchNorm2d(branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _shuffle(F.relu(self.bn1(self.conv1(x))), self.first_groups)
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        if self.stride == 2:
            return F.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return F.relu(out + x)


class ShuffleNetV1Net(nn.Module):
    """1×1 stem to 24 channels at full resolution, three stages (4, 8, 4 blocks; 240, 480, 960 channels; g = 3)
    each halving the resolution in its first block. PyTorch's default init, as RepDistiller leaves it."""

    def __init__(self, classes: int, widths: tuple[int, int, int] = (240, 480, 960),
                 blocks: tuple[int, int, int] = (4, 8, 4), groups: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv1(3, 24)
        self.bn1 = nn.BatchNorm2d(24)
        stages, cin = [], 24
        for width, n in zip(widths, blocks, strict=True):
            stages.append(nn.Sequential(*(ShuffleV1Block(cin if i == 0 else width, width, 2 if i == 0 else 1, groups)
                                          for i in range(n))))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = _three_stages(F.relu(self.bn1(self.conv1(x))), (self.layer1, self.layer2, self.layer3))
        features["embedding"] = _pool(features["stage3"])
        return ModelOutput(self.linear(features["embedding"]), features)


class ShuffleV2Block(nn.Module):
    """Split the channels in half; the second half goes 1×1-BN-ReLU, depthwise 3×3-BN, 1×1-BN-ReLU; concatenate
    and shuffle (2 groups)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = _conv1(half, half)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = _conv3(half, half, groups=half)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = _conv1(half, half)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, x2 = x.chunk(2, dim=1)
        out = F.relu(self.bn3(self.conv3(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x2))))))))
        return _shuffle(torch.cat([kept, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """Both branches see the whole input and halve the resolution: depthwise 3×3-BN then 1×1-BN-ReLU on the left,
    1×1-BN-ReLU, depthwise 3×3-BN, 1×1-BN-ReLU on the right; each makes half the output channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv1 = _conv3(cin, cin, 2, groups=cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = _conv1(cin, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv1(cin, mid)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = _conv3(mid, mid, 2, groups=mid)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = _conv1(mid, mid)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return _shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2Net(nn.Module):
    """1×1 stem to 24 channels at full resolution; three stages (a down block then 3, 7, 3 blocks; 116, 232, 464
    channels: the 1× net), a 1×1 conv to 1024, pool, linear. PyTorch's default init, as RepDistiller leaves it."""

    def __init__(self, classes: int, widths: tuple[int, int, int, int] = (116, 232, 464, 1024),
                 blocks: tuple[int, int, int] = (3, 7, 3)) -> None:
        super().__init__()
        self.conv1 = _conv1(3, 24)
        self.bn1 = nn.BatchNorm2d(24)
        stages, cin = [], 24
        for width, n in zip(widths[:3], blocks, strict=True):
            stages.append(nn.Sequential(ShuffleV2Down(cin, width), *(ShuffleV2Block(width) for _ in range(n))))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = _conv1(cin, widths[3])
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = _three_stages(F.relu(self.bn1(self.conv1(x))), (self.layer1, self.layer2, self.layer3))
        features["embedding"] = _pool(F.relu(self.bn2(self.conv2(features["stage3"]))))
        return ModelOutput(self.linear(features["embedding"]), features)


# --- specs ---------------------------------------------------------------------------------------------------


def _refuse_unless_rgb(name: str, task: Task) -> None:
    shape = tuple(task.info["input_shape"])
    if len(shape) != 3 or shape[0] != 3:
        raise IncompatibleCombination(f"model {name} takes 3-channel (C, H, W) images, not input shape {shape}")


@dataclass(frozen=True)
class CifarModelSpec(ModelSpec):
    """A spec that refuses tasks whose inputs are not 3-channel images already when a suite is planned, so the
    combination is recorded as n/a (and a teacher's students with it) instead of failing once built."""

    def check(self, task: Task, modality: str, role: str) -> None:
        super().check(task, modality, role)
        _refuse_unless_rgb(self.name, task)


def _spec(name: str, make: Callable[[int], nn.Module], description: str,
          recipe: dict[str, Any] | None = None) -> CifarModelSpec:
    def build(task: Task) -> nn.Module:
        _refuse_unless_rgb(name, task)
        return make(task.info["num_classes"])

    return CifarModelSpec(name, build, ("classification",), ("vision",), recipe=dict(recipe or {}),
                          description=description)


# RepDistiller's train_student.py trains these four students (mobile_half, mobile_full, ShuffleV1, ShuffleV2)
# at learning rate 0.01 instead of 0.05.
_LIGHT_RECIPE = {"lr": 0.01}

resnet8x4 = _spec("resnet8x4", lambda k: CifarResNet(8, (32, 64, 128, 256), k),
                  "CIFAR ResNet-8 at 4× width (32-64-128-256), 1.2M parameters: CRD's student of resnet32x4")
resnet32x4 = _spec("resnet32x4", lambda k: CifarResNet(32, (32, 64, 128, 256), k),
                   "CIFAR ResNet-32 at 4× width (32-64-128-256), 7.4M parameters: a CRD teacher")
resnet20 = _spec("resnet20", lambda k: CifarResNet(20, (16, 16, 32, 64), k),
                 "CIFAR ResNet-20 (16-32-64), 0.28M parameters: CRD's student of resnet56 and resnet110")
resnet32 = _spec("resnet32", lambda k: CifarResNet(32, (16, 16, 32, 64), k),
                 "CIFAR ResNet-32 (16-32-64), 0.47M parameters: CRD's student of resnet110")
resnet56 = _spec("resnet56", lambda k: CifarResNet(56, (16, 16, 32, 64), k),
                 "CIFAR ResNet-56 (16-32-64), 0.86M parameters: a CRD teacher")
resnet110 = _spec("resnet110", lambda k: CifarResNet(110, (16, 16, 32, 64), k),
                  "CIFAR ResNet-110 (16-32-64), 1.7M parameters: a CRD teacher")
wrn_40_2 = _spec("wrn_40_2", lambda k: WideResNet(40, 2, k), "WRN-40-2, 2.3M parameters: a CRD teacher")
wrn_16_2 = _spec("wrn_16_2", lambda k: WideResNet(16, 2, k), "WRN-16-2, 0.70M parameters: CRD's student of wrn_40_2")
wrn_40_1 = _spec("wrn_40_1", lambda k: WideResNet(40, 1, k), "WRN-40-1, 0.57M parameters: CRD's student of wrn_40_2")
vgg13 = _spec("vgg13", lambda k: VGG(VGG13_CFG, k),
              "VGG-13 with BatchNorm, no FC stack, 9.5M parameters: a CRD teacher")
vgg8 = _spec("vgg8", lambda k: VGG(VGG8_CFG, k),
             "VGG-8 with BatchNorm, no FC stack, 4.0M parameters: CRD's student of vgg13")
MobileNetV2 = _spec("MobileNetV2", MobileNetV2Net,
                    "MobileNetV2 at width 0.5 (RepDistiller's mobile_half), 0.81M parameters: CRD's cross-architecture "
                    "student of vgg13", _LIGHT_RECIPE)
ShuffleNetV1 = _spec("ShuffleNetV1", ShuffleNetV1Net,
                     "ShuffleNet V1, g=3 (240-480-960), 0.95M parameters: CRD's student of resnet32x4 and wrn_40_2",
                     _LIGHT_RECIPE)
ShuffleNetV2 = _spec("ShuffleNetV2", ShuffleNetV2Net,
                     "ShuffleNet V2 1× (116-232-464, 1024), 1.4M parameters: CRD's student of resnet32x4",
                     _LIGHT_RECIPE)

TEACHERS = [resnet32x4, resnet56, resnet110, wrn_40_2, vgg13]
"""CRD's CIFAR-100 teachers (Tables 1 and 2), less the ImageNet-style ResNet50."""
STUDENTS = [resnet8x4, resnet20, resnet32, wrn_16_2, wrn_40_1, vgg8, MobileNetV2, ShuffleNetV1, ShuffleNetV2]
"""CRD's CIFAR-100 students (Tables 1 and 2)."""
