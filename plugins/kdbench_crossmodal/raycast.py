"""Rays against a scene of a flat ground and oriented boxes: what the LiDAR and the camera both see.

One vectorised slab test serves both sensors, so a LiDAR return and a camera pixel agree on
which surface a ray meets first (occlusion), and where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISS = -1
GROUND = -2


@dataclass
class Hits:
    distance: np.ndarray
    """[R] distance along each (unit) ray to the first surface; inf for a miss."""
    target: np.ndarray
    """[R] index of the box hit first, ``GROUND`` or ``MISS``."""
    normal: np.ndarray
    """[R, 3] outward unit normal of the surface hit (zero for a miss)."""
    box_entry: np.ndarray
    """[R, N] distance at which each ray would enter each box, ignoring the others (inf if never):
    the would-be footprint of every object, used to measure how occluded it is."""


def cast(origin: np.ndarray, directions: np.ndarray, boxes: np.ndarray, ground_z: float) -> Hits:
    """First intersections of rays from ``origin`` along unit ``directions`` [R, 3] (Velodyne frame).

    ``boxes`` are [N, 7]: bottom centre x, y, z, length, width, height, yaw; the ground is the
    plane z = ``ground_z``. The origin must lie outside every box.
    """
    rays = len(directions)
    d = directions.astype(np.float32)
    yaw = boxes[:, 6].astype(np.float32)
    cos, sin = np.cos(yaw), np.sin(yaw)
    relative = origin.astype(np.float32) - boxes[:, :3].astype(np.float32)
    relative[:, 2] -= boxes[:, 5] / 2  # from the box's centre
    # per local axis (x along the box's length, y across, z up): the ray origin [N] and directions [R, N]
    o_local = (cos * relative[:, 0] + sin * relative[:, 1], -sin * relative[:, 0] + cos * relative[:, 1],
               relative[:, 2])
    d_local = (np.outer(d[:, 0], cos) + np.outer(d[:, 1], sin), np.outer(d[:, 1], cos) - np.outer(d[:, 0], sin),
               np.repeat(d[:, 2:3], len(boxes), axis=1))
    near = np.full((rays, len(boxes)), -np.inf, dtype=np.float32)
    far = np.full((rays, len(boxes)), np.inf, dtype=np.float32)
    entry_axis = np.zeros((rays, len(boxes)), dtype=np.int8)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            half = boxes[:, 3 + axis].astype(np.float32) / 2
            inverse = 1.0 / d_local[axis]
            t1, t2 = (-half - o_local[axis]) * inverse, (half - o_local[axis]) * inverse
            t_min = np.fmin(t1, t2)
            entry_axis[t_min > near] = axis
            near = np.fmax(near, t_min)
            far = np.fmin(far, np.fmax(t1, t2))
    entered = (near <= far) & (near > 0)
    box_entry = np.where(entered, near, np.inf)

    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where(d[:, 2] < 0, (ground_z - origin[2]) / d[:, 2], np.inf).astype(np.float32)
    if len(boxes):
        first = box_entry.argmin(axis=1)
        first_distance = box_entry[np.arange(rays), first]
    else:
        first, first_distance = np.zeros(rays, dtype=int), np.full(rays, np.inf, dtype=np.float32)
    on_box = first_distance < ground
    distance = np.where(on_box, first_distance, ground)
    target = np.where(on_box, first, np.where(np.isfinite(ground), GROUND, MISS))

    normal = np.zeros((rays, 3), dtype=np.float32)
    normal[target == GROUND, 2] = 1.0
    hit = np.flatnonzero(on_box)
    if len(hit):
        box = first[hit]
        axis = entry_axis[hit, box]
        sign = -np.sign(np.stack([d_local[a][hit, box] for a in range(3)])[axis, np.arange(len(hit))])
        c, s = cos[box], sin[box]
        axes = np.stack([np.stack([c, s, 0 * c], 1), np.stack([-s, c, 0 * c], 1),
                         np.stack([0 * c, 0 * c, 1 + 0 * c], 1)], axis=1)  # [H, 3 local axes, xyz]
        normal[hit] = axes[np.arange(len(hit)), axis] * sign[:, None]
    return Hits(distance, target, normal, box_entry)
