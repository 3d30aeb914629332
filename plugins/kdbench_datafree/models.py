"""LeNet-5 as the data-free papers distil it on MNIST (DAFL's ``lenet.py``, DFAD's ``network/lenet.py``).

The teacher carries BatchNorm after each convolution, since DeepInversion inverts a network through
its BatchNorm running statistics; the student halves every width, as DAFL's ``LeNet5Half`` does, and
has none (neither paper's student does). Both name the pooled maps of the first two convolutions
``stage1``/``stage2`` and the third convolution's 120-channel (60 for the half) vector
``embedding``: the "features" DAFL's activation loss reads.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput, ModelSpec, Task

LENET_INPUT = 32
"""LeNet-5's input side: the authors resize MNIST to 32×32; we pad the first convolution instead."""


class LeNet5(nn.Module):
    def __init__(self, in_channels: int, side: int, widths: tuple[int, int, int, int], classes: int,
                 batch_norm: bool) -> None:
        """``widths``: the three convolutions' channels and the hidden linear layer's units."""
        super().__init__()
        c1, c2, c3, hidden = widths

        def conv(a: int, b: int, padding: int = 0) -> list[nn.Module]:
            if not batch_norm:
                return [nn.Conv2d(a, b, 5, padding=padding), nn.ReLU()]
            return [nn.Conv2d(a, b, 5, padding=padding, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        # padding the first convolution to LeNet's 32×32 leaves its third one a 1×1 map
        self.stage1 = nn.Sequential(*conv(in_channels, c1, (LENET_INPUT - side) // 2), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(*conv(c1, c2), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(*conv(c2, c3), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c3, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        embedding = self.stage3(s2)
        return ModelOutput(self.head(embedding), {"stage1": s1, "stage2": s2, "embedding": embedding})


def _lenet(widths: tuple[int, int, int, int], batch_norm: bool):  # noqa: ANN202
    def build(task: Task) -> nn.Module:
        shape = tuple(task.info["input_shape"])
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] > LENET_INPUT or shape[1] % 2:
            raise IncompatibleCombination(f"LeNet-5 takes square images of an even side up to {LENET_INPUT} "
                                          f"pixels, not inputs shaped {shape}")
        return LeNet5(shape[0], shape[1], widths, task.info["num_classes"], batch_norm)

    return build


KINDS = ("classification",)
TEACHER_RECIPE = {"optimizer": "adam", "lr": 1e-3, "batch_size": 256, "schedule": "constant"}
"""How DAFL trains its MNIST teacher (DAFL/teacher-train.py: Adam at 1e-3, batches of 256, no schedule; its
loop runs 9 epochs, the suite sets the count), not the task's SGD at 0.05 with momentum. With an SGD-trained
LeNet-5, DAFL's generator (Adam at 0.2) fell into its dead state, every image one constant, within a few
hundred steps in 4 of 6 short probes (none of 6 with Adam-trained ones); in full 3-epoch runs it still dies
with an Adam-trained teacher, only later (suites/datafree-mnist.yaml gives the figures)."""
LENET5_BN = ModelSpec("lenet5-bn", _lenet((6, 16, 120, 84), batch_norm=True), KINDS, ("vision",),
                      recipe=TEACHER_RECIPE,
                      description="LeNet-5 (6-16-120 convolutions, 84 hidden) with BatchNorm after each "
                                  "convolution, about 62K parameters: the data-free teacher, trained as "
                                  "DAFL's teacher-train.py trains it")
LENET5_HALF = ModelSpec("lenet5-half", _lenet((3, 8, 60, 42), batch_norm=False), KINDS, ("vision",),
                        description="LeNet-5 with every width halved (DAFL's LeNet5Half), about 16K parameters")
