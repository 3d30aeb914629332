"""The bird's-eye-view grid the task detects on, and the conversions to and from it.

The grid covers 0-40 m forward and ±20 m sideways of the LiDAR (Velodyne frame), the part of the
scene image 2 sees up to 40 m. Detection maps are 40×40 cells of 1 m (row = forward, column =
sideways, left to right); the LiDAR teacher reads a finer 80×80 pillar grid of 0.5 m. Targets
are CenterPoint's: per class a Gaussian peak at each object's centre cell, and at that cell the
box regression (sub-cell offset, log length and width, sin and cos of the heading).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kdbench_crossmodal.kitti_format import CLASSES

X_RANGE = (0.0, 40.0)
Y_RANGE = (-20.0, 20.0)
CELL = 1.0
SIZE = 40
"""Detection maps are SIZE × SIZE cells of CELL metres."""
PILLAR_CELL = 0.5
PILLARS = 80
HEIGHT_EDGES = np.arange(-2.0, 1.01, 0.5)
"""Height slices of the pillar grid, in Velodyne z (the ground is at -1.73 m)."""
PILLAR_CHANNELS = len(HEIGHT_EDGES) - 1 + 1
"""Point counts per height slice, and the highest reflectance, per pillar."""
REGRESSION = ("offset_x", "offset_y", "log_length", "log_width", "sin_yaw", "cos_yaw")
CHANNELS = len(CLASSES) + len(REGRESSION)
"""Channels of a detection output: one heatmap logit per class, then the box regression."""


def cell_of(x: np.ndarray, y: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, column) grid coordinates of Velodyne positions for square cells of ``cell`` metres."""
    return (x - X_RANGE[0]) / cell, (y - Y_RANGE[0]) / cell


def cell_centres() -> tuple[np.ndarray, np.ndarray]:
    """Velodyne x [SIZE, SIZE] and y [SIZE, SIZE] of every detection cell's centre."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return X_RANGE[0] + rows * CELL, Y_RANGE[0] + cols * CELL


def pillar_grid(points: np.ndarray) -> np.ndarray:
    """A scan [N, 4] as the teacher's input: uint8 [PILLAR_CHANNELS, PILLARS, PILLARS].

    Channels: point counts (saturating at 255) in each height slice, then the highest
    reflectance × 255. Points outside the grid or the height slices are dropped.
    """
    row, col = (np.floor(v).astype(int) for v in cell_of(points[:, 0], points[:, 1], PILLAR_CELL))
    level = np.searchsorted(HEIGHT_EDGES, points[:, 2], side="right") - 1
    inside = (row >= 0) & (row < PILLARS) & (col >= 0) & (col < PILLARS) & (level >= 0)
    inside &= level < len(HEIGHT_EDGES) - 1
    row, col, level = row[inside], col[inside], level[inside]
    grid = np.zeros((PILLAR_CHANNELS, PILLARS, PILLARS), dtype=np.int64)
    np.add.at(grid, (level, row, col), 1)
    brightest = np.zeros(PILLARS * PILLARS)
    np.maximum.at(brightest, row * PILLARS + col, points[inside, 3])
    grid[-1] = (brightest.reshape(PILLARS, PILLARS) * 255).round()
    return np.minimum(grid, 255).astype(np.uint8)


def pillar_features(grid: torch.Tensor) -> torch.Tensor:
    """uint8 pillar grids [B, C, H, W] as network input: log counts and reflectance in [0, 1]."""
    grid = grid.float()
    return torch.cat([torch.log1p(grid[:, :-1]), grid[:, -1:] / 255], dim=1)


def targets(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterPoint targets of boxes [M, 6] (class, x, y, length, width, yaw; class -1 is padding).

    Returns the class heatmaps [3, SIZE, SIZE] (a Gaussian of σ = max(diagonal / 4, 0.5) cells
    around each centre cell, the peak exactly 1), the regression [6, SIZE, SIZE] and the mask
    [SIZE, SIZE] of centre cells where the regression is defined.
    """
    heatmap = np.zeros((len(CLASSES), SIZE, SIZE), dtype=np.float32)
    regression = np.zeros((len(REGRESSION), SIZE, SIZE), dtype=np.float32)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    for kind, x, y, length, width, yaw in boxes[boxes[:, 0] >= 0]:
        r, c = cell_of(np.array(x), np.array(y), CELL)
        i, j = int(np.floor(r)), int(np.floor(c))
        if not (0 <= i < SIZE and 0 <= j < SIZE):
            continue
        sigma = max(np.hypot(length, width) / CELL / 4, 0.5)
        peak = np.exp(-((rows - i) ** 2 + (cols - j) ** 2) / (2 * sigma**2))
        heatmap[int(kind)] = np.maximum(heatmap[int(kind)], peak)
        regression[:, i, j] = (r - i, c - j, np.log(length), np.log(width), np.sin(yaw), np.cos(yaw))
        mask[i, j] = True
    return heatmap, regression, mask


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on heatmap logits, normalised by the number of peaks."""
    probability = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    peak = target.eq(1).float()
    positive = -torch.log(probability) * (1 - probability).pow(alpha) * peak
    negative = -torch.log(1 - probability) * probability.pow(alpha) * (1 - target).pow(beta) * (1 - peak)
    return (positive.sum() + negative.sum()) / peak.sum().clamp(min=1)


def detection_loss(output: torch.Tensor, heatmap: torch.Tensor, regression: torch.Tensor,
                   mask: torch.Tensor, regression_weight: float = 0.25) -> torch.Tensor:
    """CenterPoint's loss: focal loss on the heatmaps plus L1 box regression at centre cells."""
    heat = focal_loss(output[:, : len(CLASSES)], heatmap)
    at_centres = mask.unsqueeze(1).expand_as(regression)
    box = F.l1_loss(output[:, len(CLASSES):][at_centres], regression[at_centres], reduction="sum")
    return heat + regression_weight * box / mask.sum().clamp(min=1)


def decode(output: torch.Tensor, top_k: int = 50) -> list[np.ndarray]:
    """Detections per frame, [K, 7]: class, x, y, score, length, width, yaw (Velodyne frame).

    A cell is a detection where its class score is a 3×3 local maximum (CenterPoint's max-pool
    NMS); the ``top_k`` highest per frame are kept.
    """
    scores = torch.sigmoid(output[:, : len(CLASSES)])
    peaks = scores * (F.max_pool2d(scores, 3, stride=1, padding=1) == scores)
    top, flat = peaks.flatten(1).topk(min(top_k, peaks[0].numel()), dim=1)
    kind, cell = flat // (SIZE * SIZE), flat % (SIZE * SIZE)
    row, col = cell // SIZE, cell % SIZE
    frames = []
    for b in range(output.shape[0]):
        box = output[b, len(CLASSES):, row[b], col[b]]
        x = X_RANGE[0] + (row[b] + box[0]) * CELL
        y = Y_RANGE[0] + (col[b] + box[1]) * CELL
        yaw = torch.atan2(box[4], box[5])
        found = torch.stack([kind[b].float(), x, y, top[b], box[2].exp(), box[3].exp(), yaw], dim=1)
        frames.append(found[top[b] > 0].numpy())
    return frames
