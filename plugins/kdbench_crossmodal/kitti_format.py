"""The KITTI object-detection file format, read and written: one loader for real and synthetic frames.

A KITTI root holds ``training/{velodyne,image_2,calib,label_2}/NNNNNN.*`` and, optionally,
``ImageSets/{split}.txt`` listing frame ids. Velodyne scans are float32 (x, y, z, reflectance)
records; labels have 15 fields per object (type, truncated, occluded, alpha, 2D box, h w l,
bottom-centre x y z in rectified camera coordinates, rotation_y).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kdbench import UserError
from kdbench_crossmodal.calibration import Calibration

CLASSES = ("Car", "Pedestrian", "Cyclist")
"""The classes the BEV task detects; other label types (Van, Truck, DontCare, ...) are ignored."""


@dataclass(frozen=True)
class Label:
    kind: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    """2D box in image-2 pixels: left, top, right, bottom."""
    dimensions: tuple[float, float, float]
    """Height, width, length in metres."""
    location: tuple[float, float, float]
    """Bottom centre in rectified camera coordinates."""
    rotation_y: float

    def line(self) -> str:
        fields = [self.kind, f"{self.truncated:.2f}", str(self.occluded), f"{self.alpha:.2f}",
                  *(f"{x:.2f}" for x in self.bbox), *(f"{x:.2f}" for x in self.dimensions),
                  *(f"{x:.2f}" for x in self.location), f"{self.rotation_y:.2f}"]
        return " ".join(fields)


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """An angle brought into [-π, π)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def velo_boxes(labels: list[Label], calib: Calibration) -> np.ndarray:
    """Labels as Velodyne-frame boxes [N, 7]: bottom centre x, y, z, then length, width, height, yaw.

    Yaw is the heading around the Velodyne z axis: ``yaw = -rotation_y - π/2`` (the convention of
    OpenPCDet and mmdetection3d; exact up to the calibration's sub-degree tilt).
    """
    if not labels:
        return np.zeros((0, 7))
    location = calib.to_velo(np.array([label.location for label in labels]))
    h, w, length = np.array([label.dimensions for label in labels]).T
    yaw = wrap_angle(-np.array([label.rotation_y for label in labels]) - np.pi / 2)
    return np.column_stack([location, length, w, h, yaw])


def read_calibration(path: Path) -> Calibration:
    values: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            key, numbers = line.split(":", 1)
            values[key.strip()] = np.array([float(x) for x in numbers.split()])
    try:
        return Calibration(values["P2"].reshape(3, 4), values["R0_rect"].reshape(3, 3),
                           values["Tr_velo_to_cam"].reshape(3, 4))
    except KeyError as missing:
        raise UserError(f"calibration file {path} lacks {missing.args[0]}") from None


def write_calibration(path: Path, calib: Calibration) -> None:
    def row(matrix: np.ndarray) -> str:
        return " ".join(f"{x:.12e}" for x in matrix.ravel())

    path.write_text(f"P2: {row(calib.P2)}\nR0_rect: {row(calib.R0_rect)}\n"
                    f"Tr_velo_to_cam: {row(calib.Tr_velo_to_cam)}\n\n")


def read_labels(path: Path) -> list[Label]:
    labels = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 15:
            raise UserError(f"{path}:{number}: a KITTI label has 15 fields, this line has {len(fields)}")
        x = [float(f) for f in fields[1:15]]
        labels.append(Label(fields[0], x[0], int(x[1]), x[2], (x[3], x[4], x[5], x[6]), (x[7], x[8], x[9]),
                            (x[10], x[11], x[12]), x[13]))
    return labels


def write_labels(path: Path, labels: list[Label]) -> None:
    path.write_text("".join(label.line() + "\n" for label in labels))


def read_velodyne(path: Path) -> np.ndarray:
    """A scan as float32 [N, 4]: x, y, z, reflectance."""
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def write_velodyne(path: Path, points: np.ndarray) -> None:
    np.ascontiguousarray(points, dtype="<f4").tofile(path)


@dataclass(frozen=True)
class Frame:
    """One frame of a KITTI root, read on demand."""

    root: Path
    """The folder holding velodyne/, image_2/, calib/ and label_2/ (KITTI's ``training``)."""
    frame_id: str

    def _file(self, folder: str, suffix: str) -> Path:
        path = self.root / folder / f"{self.frame_id}.{suffix}"
        if not path.is_file():
            raise UserError(f"KITTI frame {self.frame_id}: {path} not found")
        return path

    def points(self) -> np.ndarray:
        return read_velodyne(self._file("velodyne", "bin"))

    def image(self) -> np.ndarray:
        """RGB uint8 [H, W, 3]."""
        return np.asarray(Image.open(self._file("image_2", "png")).convert("RGB"))

    def calibration(self) -> Calibration:
        return read_calibration(self._file("calib", "txt"))

    def labels(self) -> list[Label]:
        return read_labels(self._file("label_2", "txt"))


def frame_ids(root: Path, split: str | None = None) -> list[str]:
    """Frame ids of ``split`` from ``ImageSets/{split}.txt`` beside ``root``, or every frame in ``root``."""
    if split is None:
        return sorted(path.stem for path in (root / "velodyne").glob("*.bin"))
    listing = root.parent / "ImageSets" / f"{split}.txt"
    if not listing.is_file():
        raise UserError(f"KITTI split '{split}': {listing} not found")
    return listing.read_text().split()
