"""BEV object detection from LiDAR (teacher) or from the camera (student), on KITTI-format frames.

Both roles get the same batches: ``lidar`` (the teacher's pillar grid) and ``image`` (the student's
camera image) of the same frames, with the CenterPoint targets and the ground-truth boxes.
Frames are read once through the KITTI loader and kept as tensors in the cache, keyed by the
dataset's digest, so every later build loads in a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdbench import Batch, Recipe, Task, UserError, cache_dir, call_model
from kdbench_crossmodal.bev_grid import decode, detection_loss, pillar_grid, targets
from kdbench_crossmodal.bev_map import bev_map
from kdbench_crossmodal.calibration import Calibration
from kdbench_crossmodal.kitti_format import CLASSES, Frame, frame_ids, velo_boxes
from kdbench_crossmodal.pictures import frame_pictures
from kdbench_crossmodal.scene_generator import dataset_digest, manifest, synthetic_dataset

SPLITS = ("train", "val", "test")
EVAL_BATCH = 50


def frame_tensors(frame: Frame) -> dict[str, Any]:
    """One frame as the task keeps it: pillar grid, CHW image, and its boxes [M, 6] (class, x, y, l, w, yaw)."""
    calib = frame.calibration()
    labels = [label for label in frame.labels() if label.kind in CLASSES]
    boxes = velo_boxes(labels, calib)
    kinds = np.array([CLASSES.index(label.kind) for label in labels], dtype=float)
    return {"lidar": pillar_grid(frame.points()), "image": frame.image().transpose(2, 0, 1),
            "boxes": np.column_stack([kinds, boxes[:, [0, 1, 3, 4, 6]]]), "calibration": calib}


def load_split(root: Path, split: str) -> dict[str, torch.Tensor]:
    """Every frame of ``split`` as stacked tensors, targets included; boxes padded with class -1."""
    frames = [frame_tensors(Frame(root / "training", frame_id)) for frame_id in frame_ids(root / "training", split)]
    first = frames[0]["calibration"]
    for frame in frames:
        if not all(np.allclose(getattr(frame["calibration"], key), getattr(first, key))
                   for key in ("P2", "R0_rect", "Tr_velo_to_cam")):
            raise UserError(f"{root}: frames of split '{split}' differ in calibration; the camera student's "
                            "view transform assumes one")
    most = max(1, max(len(f["boxes"]) for f in frames))
    boxes = np.full((len(frames), most, 6), -1.0, dtype=np.float32)
    for i, frame in enumerate(frames):
        boxes[i, : len(frame["boxes"])] = frame["boxes"]
    heatmap, regression, mask = (np.stack(parts) for parts in zip(*(targets(b) for b in boxes), strict=True))
    return {"lidar": torch.from_numpy(np.stack([f["lidar"] for f in frames])),
            "image": torch.from_numpy(np.stack([f["image"] for f in frames])),
            "boxes": torch.from_numpy(boxes), "heatmap": torch.from_numpy(heatmap),
            "regression": torch.from_numpy(regression), "mask": torch.from_numpy(mask),
            "calibration": first}


class CrossModalBEV(Task):
    """Class heatmaps and boxes on the 40 m × 40 m BEV grid; primary metric nuScenes-style mAP."""

    kind = "dense"
    primary_metric = "map"
    higher_is_better = True
    inputs = {"teacher": "lidar", "student": "image"}

    def __init__(self, splits: dict[str, dict[str, torch.Tensor]], calib: Calibration,
                 recipes: dict[str, Recipe]) -> None:
        super().__init__()
        self.splits = splits
        self.recipes = recipes
        self.info.update(calibration=calib, image_size=tuple(splits["train"]["image"].shape[-2:]))

    @property
    def num_train(self) -> int:
        return len(self.splits["train"]["lidar"])

    def recipe(self, role: str) -> Recipe:
        return self.recipes[role]

    def has_split(self, split: str) -> bool:
        return len(self.splits.get(split, {}).get("lidar", ())) > 0

    def batches(self, split: str, recipe: Recipe | None, generator: torch.Generator | None) -> Iterator[Batch]:
        if recipe is not None and recipe.augment is not None:
            raise UserError(f"task kitti-synth-bev has no augmentation '{recipe.augment}' (it has none)")
        data = self.splits[split]
        count = len(data["lidar"])
        if split == "train" and recipe is not None:
            order, size = torch.randperm(count, generator=generator), recipe.batch_size
        else:
            order, size = torch.arange(count), EVAL_BATCH
        for start in range(0, count, size):
            index = order[start : start + size]
            batch = {key: data[key][index] for key in ("lidar", "image", "boxes", "heatmap", "regression", "mask")}
            batch["index"] = index
            yield batch

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return detection_loss(output, batch["heatmap"], batch["regression"], batch["mask"])

    @torch.no_grad()
    def detect(self, model: nn.Module, split: str, role: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Decoded detections and ground-truth boxes per frame of ``split``."""
        was_training = model.training
        model.eval()
        found, truths = [], []
        for batch in self.batches(split, None, None):
            found += decode(call_model(model, self.model_input(batch, role)).output)
            truths += [boxes[boxes[:, 0] >= 0].numpy() for boxes in batch["boxes"]]
        model.train(was_training)
        return found, truths

    def evaluate(self, model: nn.Module, split: str, role: str,
                 reference: nn.Module | None = None) -> dict[str, float]:
        return bev_map(*self.detect(model, split, role))

    def pictures(self, model: nn.Module, role: str) -> dict[str, bytes]:
        """The first four test frames: camera image, LiDAR from above, and the model's heatmaps."""
        return frame_pictures(self, model, role)


def build_kitti_synth_bev(train: int = 2000, val: int = 500, test: int = 500, seed: int = 0) -> CrossModalBEV:
    """The task on the synthetic KITTI-format dataset of ``seed`` (generated into the cache on first use)."""
    frames = {"train": train, "val": val, "test": test}
    if train < 1 or test < 1 or val < 0:
        raise UserError(f"task kitti-synth-bev needs train ≥ 1, val ≥ 0, test ≥ 1 frames, got {frames}")
    root = synthetic_dataset(frames, seed)
    digest = dataset_digest(root)
    cached = cache_dir() / "crossmodal" / f"tensors-{digest[:16]}.pt"
    if cached.is_file():
        splits = torch.load(cached, weights_only=False)
    else:
        if manifest(root) != (root / "MANIFEST").read_text():
            raise UserError(f"generated dataset {root} does not match its MANIFEST; delete the folder to regenerate it")
        splits = {split: load_split(root, split) for split in SPLITS if frames[split]}
        torch.save(splits, cached)
    calib = splits["train"].pop("calibration")
    for split in splits.values():
        split.pop("calibration", None)
    recipe = Recipe(epochs=6, batch_size=16, optimizer="adamw", lr=2e-3, weight_decay=1e-2)
    return CrossModalBEV(splits, calib, {"teacher": recipe, "student": recipe})
