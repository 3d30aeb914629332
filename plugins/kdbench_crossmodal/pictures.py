"""A picture per frame: what the camera saw, what the LiDAR saw, and what the model predicted.

Three panels: the camera image; the LiDAR pillar grid seen from above (ground returns faint,
returns above the ground dark) with the ground-truth boxes; the model's class heatmaps (red car,
green pedestrian, blue cyclist) with ground-truth centres (white crosses) and detections scoring
over 0.3 (yellow circles). BEV panels show forward up and the vehicle's left on the left.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from kdbench import Task, call_model
from kdbench_crossmodal.bev_grid import X_RANGE, Y_RANGE, decode

EXTENT = (Y_RANGE[1], Y_RANGE[0], X_RANGE[0], X_RANGE[1])


def outline(box: np.ndarray) -> np.ndarray:
    """Closed footprint [5, 2] (y, x) of a BEV box (class, x, y, length, width, yaw) for plotting."""
    _, x, y, length, width, yaw = box
    corners = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]) * [length, width]
    cos, sin = np.cos(yaw), np.sin(yaw)
    return np.column_stack([y + corners[:, 0] * sin + corners[:, 1] * cos,
                            x + corners[:, 0] * cos - corners[:, 1] * sin])


def frame_picture(image: np.ndarray, pillars: np.ndarray, heatmap: np.ndarray, truths: np.ndarray,
                  detections: np.ndarray) -> bytes:
    """PNG bytes of one frame: ``image`` [3, H, W] uint8, ``pillars`` [C, 80, 80], ``heatmap`` [3, 40, 40]
    probabilities, ``truths`` [M, 6] boxes and ``detections`` [K, 7] (class, x, y, score, ...)."""
    from matplotlib.figure import Figure  # the object API on Agg: no global backend, no pyplot state

    figure = Figure(figsize=(13, 4))
    axes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [2.2, 1, 1]})
    axes[0].imshow(image.transpose(1, 2, 0))
    axes[0].set_title("camera (image 2)")
    ground, above = np.log1p(pillars[0].astype(float)), np.log1p(pillars[1:-1].astype(float).sum(axis=0))
    axes[1].imshow(np.flip(0.3 * ground + above, axis=1), origin="lower", extent=EXTENT, cmap="gray_r")
    for box in truths:
        axes[1].plot(*outline(box).T, color="red", linewidth=1)
    axes[1].set_title("LiDAR pillars, ground truth")
    colours = np.flip(heatmap.transpose(1, 2, 0), axis=1).clip(0, 1)
    axes[2].imshow(colours, origin="lower", extent=EXTENT)
    axes[2].scatter(truths[:, 2], truths[:, 1], marker="x", color="white", s=25)
    confident = detections[detections[:, 3] > 0.3]
    axes[2].scatter(confident[:, 2], confident[:, 1], facecolors="none", edgecolors="yellow", s=40)
    axes[2].set_title("predicted heatmaps, detections")
    for axis in axes[1:]:
        axis.set_xlim(Y_RANGE[1], Y_RANGE[0])
        axis.set_ylim(*X_RANGE)
        axis.set_xlabel("y (m, left +)")
        axis.set_ylabel("x (m, forward)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


@torch.no_grad()
def frame_pictures(task: Task, model: nn.Module, role: str, count: int = 4) -> dict[str, bytes]:
    """Pictures of the first ``count`` test frames as ``model`` (playing ``role``) sees them, by file name."""
    batch = next(iter(task.batches("test", None, None)))
    was_training = model.training
    model.eval()
    output = call_model(model, task.model_input(batch, role))
    model.train(was_training)
    detections = decode(output.output)
    heatmaps = torch.sigmoid(output.output[:, :3]).numpy()
    pictures = {}
    for i in range(min(count, len(detections))):
        boxes = batch["boxes"][i]
        pictures[f"frame-{i:03d}.png"] = frame_picture(batch["image"][i].numpy(), batch["lidar"][i].numpy(),
                                                       heatmaps[i], boxes[boxes[:, 0] >= 0].numpy(), detections[i])
    return pictures
