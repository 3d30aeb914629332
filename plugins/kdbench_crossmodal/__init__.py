"""Cross-modal: LiDAR → camera distillation for bird's-eye-view detection on KITTI-format frames.

Task ``kitti-synth-bev`` (kind ``dense``): CenterPoint-style BEV detection of cars, pedestrians
and cyclists, scored by nuScenes-style centre-distance mAP, on a synthetic dataset written in
KITTI's format and read by the KITTI loader (which reads real KITTI frames too). The teacher
``lidar-bev`` reads the LiDAR scan, the student ``camera-lss`` the camera image of the same
frame. Methods ``bev-feature``, ``heatmap-kd`` and ``bev-relation`` distil BEV features,
heatmaps and feature relations. The plugin declares the ``dense`` kind: student-only its
baseline, heatmap-kd (the plain KD of dense prediction: the teacher's heatmaps as soft targets)
its reference.
"""

from __future__ import annotations

from kdbench import Kind, Method, Metric, ModelSpec, TaskSpec, hookimpl
from kdbench_crossmodal.methods.bev_feature import BEVFeature
from kdbench_crossmodal.methods.bev_relation import BEVRelation
from kdbench_crossmodal.methods.heatmap_kd import HeatmapKD
from kdbench_crossmodal.models import CAMERA_LSS, LIDAR_BEV
from kdbench_crossmodal.task import build_kitti_synth_bev


@hookimpl
def kdbench_tasks() -> list[TaskSpec]:
    return [TaskSpec("kitti-synth-bev", "dense", "crossmodal", build_kitti_synth_bev,
                     "BEV detection (car, pedestrian, cyclist; 40 m × 40 m) on synthetic KITTI-format "
                     "LiDAR+camera frames; nuScenes-style centre-distance mAP",
                     options={"train": 2000, "val": 500, "test": 500, "seed": 0})]


@hookimpl
def kdbench_teachers() -> list[ModelSpec]:
    return [LIDAR_BEV]


@hookimpl
def kdbench_students() -> list[ModelSpec]:
    return [CAMERA_LSS]


@hookimpl
def kdbench_methods() -> list[type[Method]]:
    return [BEVFeature, HeatmapKD, BEVRelation]


DENSE = Kind(
    "dense", baseline="student-only", reference="heatmap-kd",
    metrics=(
        Metric("map", higher_is_better=True, description="nuScenes-style centre-distance mAP over the classes"),
        Metric("map_*", higher_is_better=True, description="the same mAP for one class"),
        Metric("ate", higher_is_better=False, positive=True,
               description="mean centre error of true positives at 2 m, metres"),
    ),
    description="Dense prediction on a bird's-eye-view grid: detection heatmaps scored as centre-distance mAP.",
)


@hookimpl
def kdbench_kinds() -> list[Kind]:
    return [DENSE]
