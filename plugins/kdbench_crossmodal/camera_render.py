"""A pinhole render of a synthetic scene through image 2 of a KITTI calibration.

Rendered at 1/6 of KITTI's resolution (208×64 instead of 1242×375) so a camera student trains
on one CPU core; the calibration written beside the image is scaled by the same factor
(``Calibration.scaled``), so projecting a LiDAR point with it lands on the rendered pixel.
Cues a monocular detector can use: Lambertian shading under a random sun, occlusion (the
first surface along each pixel's ray), perspective of a tiled ground with lane marks,
contact shadows under objects, and haze that grows with distance.
"""

from __future__ import annotations

import numpy as np

from kdbench_crossmodal.calibration import Calibration
from kdbench_crossmodal.lidar_raycast import MOUNT_HEIGHT
from kdbench_crossmodal.raycast import GROUND, MISS, cast

SCALE = 1 / 6
HEIGHT, WIDTH = 64, 208
FOG_DISTANCE = 120.0
HORIZON = np.array([0.75, 0.80, 0.85])
ZENITH = np.array([0.35, 0.50, 0.80])


def ground_colour(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Colours [P, 3] of ground points: 2 m asphalt tiles, lane marks, darker under objects."""
    tile = (np.floor(points[:, 0] / 2) + np.floor(points[:, 1] / 2)) % 2
    grey = 0.33 + 0.06 * tile
    lane_mark = np.abs((points[:, 1] + 1.75) % 3.5 - 1.75) > 1.65
    grey = np.where(lane_mark, 0.85, grey)
    if len(boxes):
        dx = points[:, None, 0] - boxes[None, :, 0]
        dy = points[:, None, 1] - boxes[None, :, 1]
        cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
        along, across = dx * cos + dy * sin, -dx * sin + dy * cos
        under = (np.abs(along) < boxes[:, 3] / 2 + 0.25) & (np.abs(across) < boxes[:, 4] / 2 + 0.25)
        grey = np.where(under.any(axis=1), grey * 0.45, grey)
    return np.repeat(grey[:, None], 3, axis=1)


def render(boxes: np.ndarray, colours: np.ndarray, calib: Calibration, sun: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image [H, W, 3] uint8 of ``boxes`` [N, 7] with base ``colours`` [N, 3], lit by unit ``sun``.

    ``calib`` is the calibration of the rendered (reduced) image. Also returns, per box, the
    number of pixels where it is visible and where it would be without occluders.
    """
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    directions = calib.pixel_rays_velo(u.ravel().astype(float), v.ravel().astype(float))
    origin = calib.camera_center_velo()
    hits = cast(origin, directions, boxes, ground_z=-MOUNT_HEIGHT)

    colour = np.empty((len(directions), 3))
    sky = hits.target == MISS
    up = np.clip(directions[sky, 2:3] * 4, 0, 1)
    colour[sky] = HORIZON * (1 - up) + ZENITH * up
    ground = hits.target == GROUND
    points = origin + directions[ground] * hits.distance[ground, None]
    colour[ground] = ground_colour(points, boxes)
    on_box = hits.target >= 0
    lambert = np.clip(hits.normal[on_box] @ sun, 0, None)
    colour[on_box] = colours[hits.target[on_box]] * (0.35 + 0.65 * lambert[:, None])

    seen = ~sky
    fog = np.exp(-hits.distance[seen] / FOG_DISTANCE)[:, None]
    colour[seen] = colour[seen] * fog + HORIZON * (1 - fog)
    colour += rng.normal(0, 0.02, colour.shape)
    image = (np.clip(colour, 0, 1) * 255).round().astype(np.uint8).reshape(HEIGHT, WIDTH, 3)
    visible = np.bincount(hits.target[on_box], minlength=len(boxes))
    footprint = np.isfinite(hits.box_entry).sum(axis=0)
    return image, visible, footprint
