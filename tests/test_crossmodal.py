"""The cross-modal plugin: KITTI files and calibration on real frames, the scene generator, the BEV
targets and mAP against hand-worked values, the view transform, the methods, and a CLI run."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from kdbench_crossmodal.bev_grid import CHANNELS, SIZE, decode, targets
from kdbench_crossmodal.bev_map import average_precision, bev_map
from kdbench_crossmodal.calibration import KITTI_LIKE
from kdbench_crossmodal.camera_render import HEIGHT, SCALE, WIDTH
from kdbench_crossmodal.kitti_format import Frame, Label, frame_ids, read_labels, velo_boxes, write_calibration
from kdbench_crossmodal.lidar_raycast import MOUNT_HEIGHT
from kdbench_crossmodal.methods.bev_feature import BEVFeature
from kdbench_crossmodal.methods.bev_relation import BEVRelation, keypoint_features
from kdbench_crossmodal.methods.heatmap_kd import HeatmapKD
from kdbench_crossmodal.models import CameraBEVNet
from kdbench_crossmodal.pictures import frame_pictures
from kdbench_crossmodal.scene_generator import generate, manifest
from kdbench_crossmodal.task import build_kitti_synth_bev, load_split
from kdbench_methods.at import AT
from kdbench_methods.fitnets import FitNets
from kdbench_methods.nst import NST
from kdbench_methods.vid import VID
from mlflow.tracking import MlflowClient
from PIL import Image

from kdbench import IncompatibleCombination, ModelOutput, UserError, call_model
from tests.conftest import REPO

REAL = [f"training/{folder}/00000{i}.{suffix}" for i in range(4)
        for folder, suffix in (("velodyne", "bin"), ("image_2", "png"), ("calib", "txt"), ("label_2", "txt"))]


@pytest.fixture
def kitti(require_data) -> Path:
    return require_data("kitti-sample", *REAL) / "training"


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory: pytest.TempPathFactory):
    """A task on 24 generated frames, in a cache of its own (module-wide: generation is the slow part)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield build_kitti_synth_bev(train=16, val=4, test=4, seed=3)


def inside_boxes(points: np.ndarray, boxes: np.ndarray, margin: float) -> np.ndarray:
    """[N, B] whether Velodyne points lie inside boxes [B, 7] (bottom centre, l, w, h, yaw) grown by ``margin``."""
    dx, dy = points[:, None, 0] - boxes[:, 0], points[:, None, 1] - boxes[:, 1]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    up = points[:, None, 2] - boxes[:, 2]
    return ((np.abs(along) <= boxes[:, 3] / 2 + margin) & (np.abs(across) <= boxes[:, 4] / 2 + margin)
            & (up >= -margin) & (up <= boxes[:, 5] + margin))


def share_on_2d_boxes(frame: Frame, margin_px: float) -> list[tuple[Label, int, float]]:
    """Per labelled object: its label, how many LiDAR points fall in its 3D box, and the share of them
    that project (through P2) into its 2D box grown by ``margin_px`` and inside the image."""
    calib, points = frame.calibration(), frame.points()[:, :3]
    height, width = frame.image().shape[:2]
    labels = [label for label in frame.labels() if label.kind != "DontCare"]
    inside = inside_boxes(points, velo_boxes(labels, calib), margin=0.0)
    found = []
    for i, label in enumerate(labels):
        pixels, depth = calib.project_velo(points[inside[:, i]])
        left, top, right, bottom = label.bbox
        on_box = ((pixels[:, 0] >= left - margin_px) & (pixels[:, 0] <= right + margin_px)
                  & (pixels[:, 1] >= top - margin_px) & (pixels[:, 1] <= bottom + margin_px))
        in_image = (depth > 0) & (pixels[:, 0] >= -0.5) & (pixels[:, 0] < width - 0.5) & (pixels[:, 1] >= -0.5) \
            & (pixels[:, 1] < height - 0.5)
        found.append((label, int(inside[:, i].sum()), float((on_box & in_image).mean()) if len(depth) else 0.0))
    return found


# ----------------------------------------------------------------------------------------
# KITTI format and calibration, on the four real frames
# ----------------------------------------------------------------------------------------


def test_labels_parse_into_their_fields(kitti):
    (pedestrian,) = read_labels(kitti / "label_2" / "000000.txt")
    assert pedestrian.kind == "Pedestrian" and pedestrian.occluded == 0
    assert pedestrian.bbox == (712.40, 143.00, 810.73, 307.92)
    assert pedestrian.dimensions == (1.89, 0.48, 1.20) and pedestrian.location == (1.84, 1.47, 8.41)
    assert pedestrian.rotation_y == pytest.approx(0.01)
    kinds = [label.kind for label in Frame(kitti, "000001").labels()]
    assert kinds == ["Truck", "Car", "Cyclist"] + ["DontCare"] * 4
    assert Frame(kitti, "000001").labels()[0].dimensions == (2.85, 2.63, 12.34)
    assert frame_ids(kitti) == ["000000", "000001", "000002", "000003"]


def test_calibration_round_trip_camera_velodyne_camera(kitti):
    for frame_id in frame_ids(kitti):
        calib = Frame(kitti, frame_id).calibration()
        centres = np.array([label.location for label in Frame(kitti, frame_id).labels() if label.kind != "DontCare"])
        velo = calib.to_velo(centres)
        assert np.allclose(calib.to_rect(velo), centres, atol=1e-9)
        # the Velodyne origin in camera coordinates is R0 · t of Tr_velo_to_cam, by hand
        assert np.allclose(calib.to_rect(np.zeros((1, 3)))[0], calib.R0_rect @ calib.Tr_velo_to_cam[:, 3])
    calib = Frame(kitti, "000000").calibration()
    assert calib.P2[0, 0] == pytest.approx(707.0493)
    # frame 0's pedestrian stands 8.41 m ahead of camera 0, 1.84 m to its right and 1.47 m below it;
    # the camera sits 0.27 m ahead of the LiDAR and 0.08 m below it (Tr_velo_to_cam's translation)
    (x, y, z), = calib.to_velo(np.array([[1.84, 1.47, 8.41]]))
    assert x == pytest.approx(8.41 + 0.27, abs=0.1) and y == pytest.approx(-1.84, abs=0.1)
    assert z == pytest.approx(-1.47 - 0.08, abs=0.1)


def test_real_lidar_points_project_onto_the_labelled_2d_boxes(kitti):
    checked = 0
    for frame_id in frame_ids(kitti):
        for label, points, share in share_on_2d_boxes(Frame(kitti, frame_id), margin_px=3.0):
            if points >= 20:  # the 69 m truck has a handful; every nearer object has hundreds
                assert share > 0.97, (frame_id, label.kind, points, share)
                checked += 1
    assert checked >= 5


# ----------------------------------------------------------------------------------------
# the scene generator
# ----------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_frames_independent_of_order(tmp_path: Path):
    generate(tmp_path / "a", {"train": 3}, seed=7)
    generate(tmp_path / "b", {"train": 3}, seed=7)
    generate(tmp_path / "c", {"train": 3}, seed=8)
    assert manifest(tmp_path / "a") == manifest(tmp_path / "b")
    assert manifest(tmp_path / "a") != manifest(tmp_path / "c")
    generate(tmp_path / "d", {"skip": 2, "train": 1}, seed=7)  # frame 2 generated on its own
    for folder in ("velodyne/000002.bin", "image_2/000002.png", "label_2/000002.txt"):
        assert (tmp_path / "a/training" / folder).read_bytes() == (tmp_path / "d/training" / folder).read_bytes()


def test_generated_points_lie_on_the_boxes_or_the_ground_and_project_onto_their_2d_boxes(tmp_path: Path):
    generate(tmp_path, {"train": 4}, seed=11)
    root, on_objects = tmp_path / "training", 0
    for frame_id in frame_ids(root):
        frame = Frame(root, frame_id)
        labels, points = frame.labels(), frame.points()
        assert frame.image().shape == (HEIGHT, WIDTH, 3)
        assert np.allclose(frame.calibration().P2, KITTI_LIKE.scaled(SCALE).P2)
        boxes = velo_boxes(labels, frame.calibration())
        assert np.all((boxes[:, 0] > 3) & (boxes[:, 0] < 41) & (np.abs(boxes[:, 1]) < 20))
        # labels are written to 2 decimals and ranges carry 2 cm noise: allow 10 cm
        on_box = inside_boxes(points[:, :3], boxes, margin=0.1).any(axis=1)
        on_ground = np.abs(points[:, 2] + MOUNT_HEIGHT) < 0.1
        assert np.all(on_box | on_ground)
        assert on_box.sum() > 50
        on_objects += on_box.sum()
        for label, count, share in share_on_2d_boxes(frame, margin_px=1.0):
            if count and label.truncated == 0:  # a truncated object's points run off the image
                assert share > 0.97, (frame_id, label, count, share)
    assert on_objects > 1000


def test_generated_labels_reach_the_task_as_targets(tiny_task):
    boxes = tiny_task.splits["train"]["boxes"]
    heatmap = tiny_task.splits["train"]["heatmap"]
    valid = boxes[..., 0] >= 0
    assert int((heatmap == 1).sum()) == int(valid.sum())  # one peak per object
    assert int(tiny_task.splits["train"]["mask"].sum()) == int(valid.sum())
    assert tiny_task.info["image_size"] == (HEIGHT, WIDTH)
    with pytest.raises(UserError, match="test"):
        build_kitti_synth_bev(train=4, val=0, test=0)


def test_frames_with_differing_calibrations_are_refused(tmp_path: Path):
    generate(tmp_path, {"train": 2}, seed=1)
    write_calibration(tmp_path / "training" / "calib" / "000001.txt", KITTI_LIKE)  # full resolution
    with pytest.raises(UserError, match="differ in calibration"):
        load_split(tmp_path, "train")


# ----------------------------------------------------------------------------------------
# targets, decoding and the metric
# ----------------------------------------------------------------------------------------


def test_targets_decode_back_to_their_boxes():
    boxes = np.array([[0, 12.3, -4.6, 3.9, 1.6, 0.4], [1, 30.8, 7.2, 0.8, 0.6, -2.0], [2, 5.5, 0.1, 1.8, 0.6, 3.0],
                      [-1, 0, 0, 0, 0, 0]])
    heatmap, regression, mask = targets(boxes)
    assert heatmap.shape == (3, SIZE, SIZE) and heatmap[0, 12, 15] == 1.0 and mask.sum() == 3
    output = torch.cat([torch.from_numpy(heatmap * 20 - 10), torch.from_numpy(regression)]).unsqueeze(0)
    assert output.shape[1] == CHANNELS
    (found,) = decode(output)
    found = found[found[:, 3] > 0.5]
    found = found[np.argsort(found[:, 0])]
    assert np.allclose(found[:, [0, 1, 2, 4, 5, 6]], boxes[:3], atol=1e-5)
    assert bev_map([found], [boxes[:3]])["map"] == pytest.approx(1.0)


def test_map_perfect_is_one_and_beyond_four_metres_is_zero():
    truths = [np.array([[0, 10.0, 2.0], [1, 20.0, -3.0], [2, 30.0, 5.0]]), np.array([[0, 15.0, 0.0]])]
    perfect = [np.column_stack([t, np.full(len(t), 0.9)]) for t in truths]
    metrics = bev_map(perfect, truths)
    assert metrics["map"] == pytest.approx(1.0) and metrics["ate"] == pytest.approx(0.0)
    assert [metrics[f"map_{c}"] for c in ("car", "pedestrian", "cyclist")] == pytest.approx([1.0] * 3)
    shifted = [p + np.array([0, 4.01, 0, 0]) for p in perfect]
    metrics = bev_map(shifted, truths)
    assert metrics["map"] == 0.0 and metrics["ate"] == 1.0
    assert bev_map([p + np.array([0, 3.9, 0, 0]) for p in perfect], truths)["map"] > 0  # inside the 4 m threshold


def test_map_of_a_hand_worked_case():
    # two cars; detections by falling score: 0.3 m off car 1, a false positive, 1.5 m off car 2
    truths = [np.array([[0, 10.0, 0.0], [0, 20.0, 5.0]])]
    found = [np.array([[0, 10.3, 0.0, 0.9], [0, 30.0, -9.0, 0.8], [0, 20.0, 6.5, 0.7], [1, 5.0, 5.0, 0.6]])]
    # at 0.5 and 1 m: only the first is a true positive (recall 1/2 at precision 1): of nuScenes' 90
    # recall points above 10%, 40 get precision 1 - 0.1 and the rest 0 -> 36/90/0.9 = 4/9
    assert average_precision(np.array([True, False, False]), 2) == pytest.approx(4 / 9)
    # at 2 and 4 m: T F T -> 40 points at 0.9, 50 points at 2/3 - 0.1 -> (36 + 28 1/3)/81
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx((36 + 85 / 3) / 81)
    metrics = bev_map(found, truths)
    assert metrics["map_car"] == pytest.approx((2 * 4 / 9 + 2 * (36 + 85 / 3) / 81) / 4)
    assert "map_pedestrian" not in metrics  # no pedestrian ground truth: not averaged in
    assert metrics["map"] == metrics["map_car"]
    assert metrics["ate"] == pytest.approx((0.3 + 1.5) / 2)


# ----------------------------------------------------------------------------------------
# models and methods
# ----------------------------------------------------------------------------------------


def test_the_view_transform_puts_each_bev_cell_on_its_camera_column_and_depth():
    calib = KITTI_LIKE.scaled(SCALE)
    grid = CameraBEVNet.sampling_grid(calib, WIDTH // CameraBEVNet.STRIDE)[0]
    column, depth = grid[..., 0], grid[..., 1]
    # cell (20, 20) is 20.5 m ahead, 0.5 m left; camera 2 sits 0.27 m ahead and 0.06 m left of the LiDAR:
    # pixel column cu - f·0.44/20.23 = 98.98, feature column (98.98 - 1.5) / 4 = 24.37 of 0..51
    pixel = calib.P2[0, 2] - calib.P2[0, 0] * (0.5 - 0.06) / (20.5 - 0.27)
    assert column[20, 20] == pytest.approx((pixel - 1.5) / 4 / 51 * 2 - 1, abs=0.01)
    assert depth[20, 20] == pytest.approx((20.5 - 0.27 - 0.5) / 40 * 2 - 1, abs=0.01)
    assert np.all(np.diff(column[30]) < 0)  # further left (larger y) is further left in the image
    assert abs(column[1, 0]) > 1 and abs(column[1, -1]) > 1  # 1.5 m ahead, 19.5 m aside: out of view


def bev_output(bev: torch.Tensor, logits: torch.Tensor) -> ModelOutput:
    return ModelOutput(torch.cat([logits, torch.zeros(logits.shape[0], 6, SIZE, SIZE)], 1),
                       {"bev": bev, "heatmap": torch.sigmoid(logits)})


def test_cross_modal_losses_against_identities(tiny_task):
    batch = next(iter(tiny_task.batches("train", None, None)))
    bev = torch.randn(len(batch["index"]), 8, SIZE, SIZE)
    logits = torch.zeros(len(batch["index"]), 3, SIZE, SIZE)
    same = bev_output(bev, logits)
    feature = BEVFeature(tiny_task, [])
    feature.setup(same, [same])
    with torch.no_grad():
        feature.adapter.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
        feature.adapter.bias.zero_()
    assert feature.loss(batch, same, [same])["bev"].item() == pytest.approx(0.0, abs=1e-10)
    assert feature.loss(batch, same, [bev_output(bev + 1, logits)])["bev"].item() == pytest.approx(1.0)
    # agreeing heatmaps diverge by 0; a sure teacher (logit 30) against an unsure student (logit 0, p = 1/2)
    # by ln 2 per cell, summed over the 3 × 40 × 40 cells of each frame and divided by the objects
    heat = HeatmapKD(tiny_task, [])
    assert heat.loss(batch, same, [same])["heatmap"].item() == pytest.approx(0.0, abs=1e-6)
    sure = bev_output(bev, logits + 30)
    cells, objects = logits.numel(), int(batch["mask"].sum())
    assert heat.loss(batch, same, [sure])["heatmap"].item() == pytest.approx(math.log(2) * cells / objects, rel=1e-5)
    relation = BEVRelation(tiny_task, [])
    assert relation.loss(batch, same, [same])["relation"].item() == pytest.approx(0.0, abs=1e-10)
    assert relation.loss(batch, same, [bev_output(torch.randn_like(bev), logits)])["relation"].item() > 0


def test_keypoints_sample_the_bev_at_box_centres_corners_and_edges():
    rows = torch.arange(SIZE, dtype=torch.float32).view(1, 1, SIZE, 1).expand(1, 1, SIZE, SIZE)
    cols = torch.arange(SIZE, dtype=torch.float32).view(1, 1, 1, SIZE).expand(1, 1, SIZE, SIZE)
    x_map = torch.cat([rows + 0.5, cols - 19.5], dim=1)  # channel 0 holds each cell's x, channel 1 its y
    boxes = torch.tensor([[[0, 20.5, 0.5, 4.0, 2.0, 0.0], [-1, 0, 0, 0, 0, 0]]])
    points, valid = keypoint_features(x_map, boxes)
    assert valid.tolist() == [[True, False]]
    assert points[0, 0, 0].tolist() == pytest.approx([20.5, 0.5], abs=1e-4)  # centre
    assert points[0, 0, 1].tolist() == pytest.approx([22.5, 1.5], abs=1e-4)  # front-left corner
    assert points[0, 0, 6].tolist() == pytest.approx([18.5, 0.5], abs=1e-4)  # rear edge midpoint


def test_library_feature_methods_run_on_bev_features(tiny_task):
    teacher, student = (spec.build(tiny_task) for spec in (_spec("lidar-bev"), _spec("camera-lss")))
    batch = next(iter(tiny_task.batches("train", None, None)))
    with torch.no_grad():
        t_out = call_model(teacher, tiny_task.model_input(batch, "teacher"))
    s_out = call_model(student, tiny_task.model_input(batch, "student"))
    with pytest.raises(IncompatibleCombination, match="bev"):
        FitNets(tiny_task, []).setup(s_out, [t_out])  # 'stage2' by default: named in the suite
    on_bev = {"student_feature": "bev", "teacher_feature": "bev"}
    for method in (FitNets(tiny_task, [], **on_bev), NST(tiny_task, [], **on_bev),
                   AT(tiny_task, []), VID(tiny_task, [])):
        s_out = call_model(student, tiny_task.model_input(batch, "student"))
        method.setup(s_out, [t_out])
        terms = method.loss(batch, s_out, [t_out])
        total = sum(terms.values())
        assert torch.isfinite(total) and len(terms) == 2
        student.zero_grad(set_to_none=True)
        total.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.image.parameters()), method.name


def _spec(name: str):
    from kdbench_crossmodal.models import CAMERA_LSS, LIDAR_BEV

    return {"lidar-bev": LIDAR_BEV, "camera-lss": CAMERA_LSS}[name]


def test_frame_pictures_are_pngs_of_the_three_panels(tiny_task):
    student = _spec("camera-lss").build(tiny_task)
    pictures = frame_pictures(tiny_task, student, "student", count=2)
    assert sorted(pictures) == ["frame-000.png", "frame-001.png"]
    image = Image.open(io.BytesIO(pictures["frame-000.png"]))
    assert image.format == "PNG" and image.size[0] > 2.5 * image.size[1]


# ----------------------------------------------------------------------------------------
# end to end
# ----------------------------------------------------------------------------------------


def test_a_tiny_suite_runs_teacher_and_distilled_students(cli, isolated: Path):
    suite = isolated / "cm.yaml"
    suite.write_text(
        "name: cm\nseeds: [0]\n"
        "tasks: [{name: kitti-synth-bev, options: {train: 16, val: 4, test: 4}}]\n"
        "pairs: [{teacher: lidar-bev, student: camera-lss}]\n"
        "methods: [student-only, bev-feature, heatmap-kd, bev-relation, fitnets]\n"
        "recipe: {teacher: {epochs: 1}, student: {epochs: 1}}\n")
    code, out, err = cli("run", suite)
    assert code == 0, out + err
    client = MlflowClient(tracking_uri=f"sqlite:///{isolated / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("cm").experiment_id])
    by_method = {r.data.tags["kdbench.method"]: r for r in runs}
    assert by_method["fitnets"].data.tags["kdbench.skipped"].startswith("the student has no feature named 'stage2'")
    for method in ("teacher", "student-only", "bev-feature", "heatmap-kd", "bev-relation"):
        run = by_method[method]
        assert run.info.status == "FINISHED" and "kdbench.skipped" not in run.data.tags, method
        assert 0 <= run.data.metrics["test_map"] <= 1 and "val_map" in run.data.metrics
    assert by_method["heatmap-kd"].data.tags["kdbench.teacher_outputs_cached"] == "true"
    assert "train_loss_relation" in by_method["bev-relation"].data.metrics
    pictures = [a.path for a in client.list_artifacts(by_method["bev-feature"].info.run_id, "pictures")]
    assert pictures == [f"pictures/frame-00{i}.png" for i in range(4)]


def test_the_crossmodal_suite_validates():
    from kdbench.registry import Registry
    from kdbench.suite import load_suite

    assert load_suite(REPO / "suites" / "crossmodal-bev.yaml", Registry.load()).name == "crossmodal-bev"
