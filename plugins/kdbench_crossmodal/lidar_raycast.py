"""A 64-beam spinning LiDAR (the HDL-64E of KITTI) ray-cast into a synthetic scene.

Beams spread evenly from +2° to -24.8° elevation, as the HDL-64E's; azimuth covers the forward
half (±90°), the part of the scan the BEV grid uses, in 0.4° steps (the real sensor's 0.08° would
only multiply points per cell). Returns drop out at random, more often far away, and ranges
carry Gaussian noise, as real scans do.
"""

from __future__ import annotations

import numpy as np

from kdbench_crossmodal.raycast import GROUND, MISS, cast

ELEVATIONS_DEG = np.linspace(2.0, -24.8, 64)
AZIMUTH_STEP_DEG = 0.4
MOUNT_HEIGHT = 1.73
"""Height of the LiDAR above the ground (KITTI's): the ground is the plane z = -1.73."""
MAX_RANGE = 80.0


def beam_directions(azimuth_step_deg: float = AZIMUTH_STEP_DEG) -> np.ndarray:
    """Unit directions [64 · A, 3] of one forward half-revolution."""
    azimuth = np.radians(np.arange(-90.0, 90.0, azimuth_step_deg))
    elevation = np.radians(ELEVATIONS_DEG)
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)


_DIRECTIONS = beam_directions()


def scan(boxes: np.ndarray, reflectance: np.ndarray, rng: np.random.Generator, dropout: float = 0.05,
         range_noise: float = 0.02) -> np.ndarray:
    """A scan [M, 4] (x, y, z, reflectance, float32) of ``boxes`` [N, 7] on the ground.

    ``reflectance`` [N] is each box's surface reflectance; the ground's is asphalt-dark with
    bright lane marks every 3.5 m sideways. Returns fade with the cosine of incidence; a return
    is lost with probability ``dropout`` plus up to 10% more at maximum range.
    """
    hits = cast(np.zeros(3), _DIRECTIONS, boxes, ground_z=-MOUNT_HEIGHT)
    keep = (hits.target != MISS) & (hits.distance < MAX_RANGE)
    distance = hits.distance[keep]
    keep_prob = 1 - dropout - 0.1 * distance / MAX_RANGE
    survived = rng.random(len(distance)) < keep_prob
    directions = _DIRECTIONS[keep][survived]
    target, normal = hits.target[keep][survived], hits.normal[keep][survived]
    distance = distance[survived] + rng.normal(0, range_noise, survived.sum()).astype(np.float32)
    points = directions * distance[:, None]

    on_ground = target == GROUND
    lane_mark = np.abs((points[:, 1] + 1.75) % 3.5 - 1.75) > 1.65
    own = np.append(reflectance, 0.0)[np.where(on_ground, -1, target)]
    surface = np.where(on_ground, np.where(lane_mark, 0.6, 0.12), own)
    incidence = np.abs((directions * normal).sum(axis=1))
    intensity = np.clip(surface * (0.4 + 0.6 * incidence) + rng.normal(0, 0.02, len(points)), 0, 1)
    return np.column_stack([points, intensity]).astype(np.float32)
