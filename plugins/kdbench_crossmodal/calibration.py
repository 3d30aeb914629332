"""KITTI camera/LiDAR calibration: the transforms between the Velodyne frame, the rectified
camera frame and image pixels, as one object so every module converts the same way.

Frames: Velodyne (x forward, y left, z up), rectified camera 0 (x right, y down, z forward;
KITTI labels live here), image 2 pixels (u right, v down) through ``P2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    """A 3×3 or 3×4 matrix padded to 4×4 with the identity's last row."""
    padded = np.eye(4)
    padded[: matrix.shape[0], : matrix.shape[1]] = matrix
    return padded


@dataclass(frozen=True)
class Calibration:
    P2: np.ndarray
    """3×4 projection of rectified camera-0 coordinates onto image 2."""
    R0_rect: np.ndarray
    """3×3 rectifying rotation of camera 0."""
    Tr_velo_to_cam: np.ndarray
    """3×4 rigid transform from Velodyne to (unrectified) camera-0 coordinates."""

    @property
    def velo_to_rect(self) -> np.ndarray:
        """4×4 rigid transform from Velodyne to rectified camera-0 coordinates."""
        return _homogeneous(self.R0_rect) @ _homogeneous(self.Tr_velo_to_cam)

    def to_rect(self, points: np.ndarray) -> np.ndarray:
        """Velodyne points [N, 3] in rectified camera coordinates."""
        matrix = self.velo_to_rect
        return points @ matrix[:3, :3].T + matrix[:3, 3]

    def to_velo(self, points: np.ndarray) -> np.ndarray:
        """Rectified camera points [N, 3] in Velodyne coordinates (the exact inverse of ``to_rect``)."""
        matrix = np.linalg.inv(self.velo_to_rect)
        return points @ matrix[:3, :3].T + matrix[:3, 3]

    def project_rect(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels [N, 2] of rectified camera points [N, 3], and their depth (z) in camera 2."""
        projected = points @ self.P2[:, :3].T + self.P2[:, 3]
        depth = projected[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return projected[:, :2] / depth[:, None], depth

    def project_velo(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels [N, 2] and camera depths of Velodyne points [N, 3]."""
        return self.project_rect(self.to_rect(points))

    def camera_center_velo(self) -> np.ndarray:
        """Where camera 2's optical centre sits in the Velodyne frame.

        ``P2 = K [I | t]``, so the centre in rectified coordinates is ``-K⁻¹ P2[:, 3]``.
        """
        center_rect = -np.linalg.solve(self.P2[:, :3], self.P2[:, 3])
        return self.to_velo(center_rect[None])[0]

    def pixel_rays_velo(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Unit directions [N, 3], in the Velodyne frame, of the rays through pixels (u, v) of image 2."""
        rect = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(self.P2[:, :3]).T
        rotation = np.linalg.inv(self.velo_to_rect)[:3, :3]
        directions = rect @ rotation.T
        return directions / np.linalg.norm(directions, axis=-1, keepdims=True)

    def scaled(self, factor: float) -> Calibration:
        """The calibration of image 2 resized by ``factor`` (pixel coordinates scale, depth does not).

        Used for images rendered at reduced resolution: ``P2``'s first two rows scale, so a
        point projects to ``factor`` times its full-resolution pixel.
        """
        scale = np.diag([factor, factor, 1.0])
        return Calibration(scale @ self.P2, self.R0_rect, self.Tr_velo_to_cam)


KITTI_LIKE = Calibration(
    P2=np.array([[721.5377, 0.0, 609.5593, 44.85728],
                 [0.0, 721.5377, 172.854, 0.2163791],
                 [0.0, 0.0, 1.0, 0.002745884]]),
    R0_rect=np.array([[0.9999239, 0.00983776, -0.007445048],
                      [-0.009869795, 0.9999421, -0.004278459],
                      [0.007402527, 0.004351614, 0.9999631]]),
    Tr_velo_to_cam=np.array([[0.007533745, -0.9999714, -0.000616602, -0.004069766],
                             [0.01480249, 0.0007280733, -0.9998902, -0.07631618],
                             [0.9998621, 0.00752379, 0.01480755, -0.2717806]]),
)
"""The published calibration of KITTI's 2011-09-26 recording day (full 1242×375 resolution),
used by the synthetic scenes so their geometry is KITTI's."""
