"""The LiDAR teacher and the camera student: two encoders into the same BEV grid, the same heads.

Both return ``ModelOutput(output, {"bev": ..., "heatmap": ...})``: the output is the detection
map [B, 9, 40, 40] (class heatmap logits, then box regression, see ``bev_grid``), ``bev`` the BEV
feature map the heads read, ``heatmap`` the class probabilities — the features the cross-modal
methods distil, found by name.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdbench import ModelOutput, ModelSpec, Task
from kdbench_crossmodal.bev_grid import CHANNELS, PILLAR_CHANNELS, SIZE, cell_centres, pillar_features
from kdbench_crossmodal.calibration import Calibration
from kdbench_crossmodal.kitti_format import CLASSES
from kdbench_crossmodal.lidar_raycast import MOUNT_HEIGHT

BEV_CHANNELS = 32


def conv(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class DetectionHead(nn.Module):
    """CenterPoint's head: a shared 3×3 convolution, then 1×1 to the class heatmaps and the box regression.

    The heatmap bias starts at -2.19 (a 10% prior), as CenterPoint initialises it, so the focal
    loss does not start swamped by background.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shared = conv(channels, channels)
        self.out = nn.Conv2d(channels, CHANNELS, 1)
        with torch.no_grad():
            self.out.bias[: len(CLASSES)] = -2.19

    def forward(self, bev: torch.Tensor) -> ModelOutput:
        output = self.out(self.shared(bev))
        return ModelOutput(output, {"bev": bev, "heatmap": torch.sigmoid(output[:, : len(CLASSES)])})


class LidarBEVNet(nn.Module):
    """Teacher: the 0.5 m pillar grid (height-slice counts, reflectance) → a BEV CNN at 1 m → heads."""

    def __init__(self, width: int = BEV_CHANNELS) -> None:
        super().__init__()
        self.encoder = nn.Sequential(conv(PILLAR_CHANNELS, 24), conv(24, width, stride=2), conv(width, width),
                                     conv(width, width))
        self.head = DetectionHead(width)

    def forward(self, pillars: torch.Tensor) -> ModelOutput:
        return self.head(self.encoder(pillar_features(pillars)))


class CameraBEVNet(nn.Module):
    """Student: an image CNN, lifted to BEV by a learnt depth distribution (Lift-Splat-Shoot), → heads.

    Philion & Fidler, "Lift, Splat, Shoot" (ECCV 2020): each feature pixel predicts a softmax over
    depth bins and a context vector; their outer product places the context along the pixel's ray.
    Under a pinhole camera a pixel column and a depth fix the BEV position whatever the row, so the
    rows are summed first (a [B, C, depth, column] polar map), and every BEV cell then samples the
    polar map bilinearly at its column and depth, precomputed from the calibration.
    """

    STRIDE = 4
    DEPTHS = np.arange(0.5, 41.0, 1.0)
    """Depth-bin centres in metres along the camera axis."""

    def __init__(self, calib: Calibration, image_size: tuple[int, int], width: int = BEV_CHANNELS) -> None:
        super().__init__()
        self.image = nn.Sequential(conv(3, 16, stride=2), conv(16, 32, stride=2), conv(32, 32), conv(32, 32))
        self.depth = nn.Conv2d(32, len(self.DEPTHS), 1)
        self.context = nn.Conv2d(32, width, 1)
        self.bev = nn.Sequential(conv(width, width), conv(width, width))
        self.head = DetectionHead(width)
        columns = image_size[1] // self.STRIDE
        self.register_buffer("grid", torch.from_numpy(self.sampling_grid(calib, columns)), persistent=False)

    @classmethod
    def sampling_grid(cls, calib: Calibration, columns: int) -> np.ndarray:
        """[1, SIZE, SIZE, 2] normalised (column, depth) of every BEV cell in the polar map.

        Each cell is taken at 0.8 m above the ground (mid-height of the objects); cells behind the
        camera or outside its view fall outside [-1, 1] and read zeros.
        """
        x, y = cell_centres()
        centres = np.stack([x.ravel(), y.ravel(), np.full(x.size, 0.8 - MOUNT_HEIGHT)], axis=1)
        pixels, depth = calib.project_velo(centres)
        column = (pixels[:, 0] - (cls.STRIDE - 1) / 2) / cls.STRIDE
        u = np.where(depth > 0, column / (columns - 1) * 2 - 1, 2.0)
        d = (depth - cls.DEPTHS[0]) / (cls.DEPTHS[-1] - cls.DEPTHS[0]) * 2 - 1
        return np.stack([u, d], axis=1).reshape(1, SIZE, SIZE, 2).astype(np.float32)

    def forward(self, image: torch.Tensor) -> ModelOutput:
        features = self.image(image.float() / 255 - 0.5)
        depth = self.depth(features).softmax(dim=1)
        polar = torch.einsum("bdvu,bcvu->bcdu", depth, self.context(features))
        grid = self.grid.expand(image.shape[0], -1, -1, -1)
        bev = F.grid_sample(polar, grid, align_corners=True)
        return self.head(self.bev(bev))


def build_teacher(task: Task) -> nn.Module:
    return LidarBEVNet()


def build_student(task: Task) -> nn.Module:
    return CameraBEVNet(task.info["calibration"], task.info["image_size"])


LIDAR_BEV = ModelSpec("lidar-bev", build_teacher, kinds=("dense",), modalities=("crossmodal",), reads="lidar",
                      description="LiDAR pillar grid → BEV CNN → CenterPoint heads (teacher)")
CAMERA_LSS = ModelSpec("camera-lss", build_student, kinds=("dense",), modalities=("crossmodal",), reads="image",
                       description="image CNN → Lift-Splat depth bins → BEV CNN → CenterPoint heads (student)")
