"""Synthetic KITTI-format scenes: cars, pedestrians and cyclists on a ground plane, seen by a
64-beam LiDAR and a camera, written as KITTI object files so the real-data loader reads them.

There is no public LiDAR+camera dataset small and free enough to ship (KITTI itself is
non-commercial), so training data is generated: objects take KITTI's mean class sizes (with
spread) and uniform random headings, are placed without overlap in the camera's field of view
within 40 m (KITTI labels only what image 2 sees), and each frame's random draws come from
``(seed, frame index)`` alone, so a dataset is the same bytes whoever generates it, in any order.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kdbench import cache_dir
from kdbench_crossmodal import lidar_raycast
from kdbench_crossmodal.calibration import KITTI_LIKE, Calibration
from kdbench_crossmodal.camera_render import SCALE, render
from kdbench_crossmodal.kitti_format import CLASSES, Label, wrap_angle, write_calibration, write_labels, write_velodyne

SIZES = {  # (length, width, height) mean and spread in metres, KITTI's training labels
    "Car": ((3.88, 1.63, 1.53), (0.43, 0.10, 0.14)),
    "Pedestrian": ((0.84, 0.66, 1.76), (0.23, 0.14, 0.11)),
    "Cyclist": ((1.76, 0.60, 1.74), (0.18, 0.12, 0.09)),
}
MEAN_COUNT = {"Car": 4.0, "Pedestrian": 1.5, "Cyclist": 1.0}
HALF_FOV = np.radians(37.0)
"""Objects' centres stay 3-4° inside image 2's ±40° horizontal field of view."""
DEFAULT_FRAMES = {"train": 2000, "val": 500, "test": 500}


@dataclass
class Scene:
    boxes: np.ndarray
    """[N, 7] Velodyne-frame boxes: bottom centre x, y, z, length, width, height, yaw."""
    kinds: list[str]
    colours: np.ndarray
    reflectance: np.ndarray
    sun: np.ndarray


def sample_scene(rng: np.random.Generator) -> Scene:
    boxes, kinds = [], []
    for kind in CLASSES:
        mean, spread = (np.array(v) for v in SIZES[kind])
        for _ in range(rng.poisson(MEAN_COUNT[kind])):
            size = np.clip(mean + spread * rng.normal(size=3), 0.7 * mean, 1.3 * mean)
            radius = np.hypot(size[0], size[1]) / 2
            for _attempt in range(20):
                x = rng.uniform(4.0, 40.0)
                y = rng.uniform(-1, 1) * min(19.0, (x - 0.3) * np.tan(HALF_FOV))
                if all(np.hypot(x - b[0], y - b[1]) > radius + np.hypot(b[3], b[4]) / 2 + 0.3 for b in boxes):
                    boxes.append([x, y, -lidar_raycast.MOUNT_HEIGHT, *size, rng.uniform(-np.pi, np.pi)])
                    kinds.append(kind)
                    break
    count = len(boxes)
    tint = {"Car": (0.1, 0.9), "Pedestrian": (0.05, 0.5), "Cyclist": (0.1, 0.7)}
    colours = np.array([rng.uniform(*tint[k], size=3) for k in kinds]).reshape(count, 3)
    albedo = {"Car": (0.3, 0.7), "Pedestrian": (0.1, 0.3), "Cyclist": (0.2, 0.5)}
    reflectance = np.array([rng.uniform(*albedo[k]) for k in kinds])
    elevation, azimuth = rng.uniform(np.radians(25), np.radians(70)), rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    return Scene(np.array(boxes).reshape(count, 7), kinds, colours, reflectance, sun)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """The 8 corners [N, 8, 3] of Velodyne-frame boxes [N, 7]."""
    signs = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (0.0, 1.0)])
    local = signs[None] * boxes[:, None, 3:6]
    cos, sin = np.cos(boxes[:, 6:7]), np.sin(boxes[:, 6:7])
    x = local[..., 0] * cos - local[..., 1] * sin
    y = local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def labels_of(scene: Scene, calib: Calibration, visible: np.ndarray, footprint: np.ndarray,
              image_size: tuple[int, int]) -> list[Label]:
    """KITTI labels of a scene: 2D boxes from the projected corners, truncation, occlusion level."""
    height, width = image_size
    labels = []
    bottom = calib.to_rect(scene.boxes[:, :3]) if len(scene.boxes) else np.zeros((0, 3))
    for i, kind in enumerate(scene.kinds):
        pixels, _ = calib.project_velo(box_corners(scene.boxes[i : i + 1])[0])
        left, top = pixels.min(axis=0)
        right, low = pixels.max(axis=0)
        clipped = (np.clip([left, right], 0, width - 1), np.clip([top, low], 0, height - 1))
        area = (right - left) * (low - top)
        inside = np.ptp(clipped[0]) * np.ptp(clipped[1])
        share = visible[i] / footprint[i] if footprint[i] else 0.0
        occluded = 0 if share > 0.8 else 1 if share > 0.4 else 2 if share > 0 else 3
        rotation_y = float(wrap_angle(-scene.boxes[i, 6] - np.pi / 2))
        x, _, z = bottom[i]
        length, w, h = scene.boxes[i, 3:6]
        labels.append(Label(kind, float(1 - inside / area), occluded, float(wrap_angle(rotation_y - np.arctan2(x, z))),
                            (clipped[0][0], clipped[1][0], clipped[0][1], clipped[1][1]), (h, w, length),
                            tuple(bottom[i]), rotation_y))
    return labels


def write_frame(root: Path, frame_id: str, seed: int, index: int) -> None:
    """Generate frame ``index`` of the dataset with ``seed`` and write it under ``root`` (KITTI's ``training``)."""
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)
    calib = KITTI_LIKE.scaled(SCALE)
    points = lidar_raycast.scan(scene.boxes, scene.reflectance, rng)
    image, visible, footprint = render(scene.boxes, scene.colours, calib, scene.sun, rng)
    write_velodyne(root / "velodyne" / f"{frame_id}.bin", points)
    Image.fromarray(image).save(root / "image_2" / f"{frame_id}.png", compress_level=1)
    write_calibration(root / "calib" / f"{frame_id}.txt", calib)
    write_labels(root / "label_2" / f"{frame_id}.txt", labels_of(scene, calib, visible, footprint, image.shape[:2]))


def generate(destination: Path, frames: dict[str, int], seed: int) -> None:
    """Write a KITTI root at ``destination``: ``training/`` with every frame and ``ImageSets/{split}.txt``."""
    root = destination / "training"
    for folder in ("velodyne", "image_2", "calib", "label_2"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (destination / "ImageSets").mkdir(exist_ok=True)
    index = 0
    for split, count in frames.items():
        ids = [f"{i:06d}" for i in range(index, index + count)]
        for i, frame_id in enumerate(ids, start=index):
            write_frame(root, frame_id, seed, i)
        (destination / "ImageSets" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        index += count


def manifest(destination: Path) -> str:
    """``sha256  path`` for every file of a generated root, sorted: its digest identifies the dataset."""
    lines = []
    for path in sorted(p for p in destination.rglob("*") if p.is_file() and p.name != "MANIFEST"):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(destination)}\n")
    return "".join(lines)


def dataset_digest(destination: Path) -> str:
    return hashlib.sha256((destination / "MANIFEST").read_bytes()).hexdigest()


def synthetic_dataset(frames: dict[str, int] | None = None, seed: int = 0) -> Path:
    """The generated KITTI root for ``frames`` per split and ``seed``, generated into the cache on first use.

    Generation goes to a temporary folder renamed into place when complete, with a MANIFEST of
    every file's SHA-256, so an interrupted generation is never mistaken for a dataset.
    """
    frames = frames or DEFAULT_FRAMES
    name = f"kitti-synth-seed{seed}-" + "-".join(f"{split}{count}" for split, count in frames.items())
    destination = cache_dir() / "crossmodal" / name
    if (destination / "MANIFEST").is_file():
        return destination
    partial = destination.with_name(f"{name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    generate(partial, frames, seed)
    (partial / "MANIFEST").write_text(manifest(partial))
    partial.rename(destination)
    return destination
