"""Named features, and the small learned maps that bring a student's features to a teacher's shape.

Shared by the feature and relation methods: features are always looked up by name (never by
position), a missing name is an ``IncompatibleCombination`` that says which names exist, and
spatial maps of different sizes are brought to the teacher's size the same way everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput


def feature(output: ModelOutput, name: str, who: str) -> torch.Tensor:
    """The feature called ``name`` of the ``who`` ('student' or 'teacher') model."""
    if name not in output.features:
        known = ", ".join(sorted(output.features)) or "none"
        raise IncompatibleCombination(f"the {who} has no feature named '{name}' (it has: {known})")
    return output.features[name]


def feature_pair(student: ModelOutput, teacher: ModelOutput | None, student_name: str,
                 teacher_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The named student and teacher features: both vectors [B, D] or both maps [B, C, H, W]."""
    if teacher is None:
        raise IncompatibleCombination("this method needs a teacher's features")
    s, t = feature(student, student_name, "student"), feature(teacher, teacher_name, "teacher")
    if s.dim() != t.dim() or s.dim() not in (2, 4):
        raise IncompatibleCombination(
            f"student feature '{student_name}' {tuple(s.shape[1:])} and teacher feature "
            f"'{teacher_name}' {tuple(t.shape[1:])} must both be vectors or both be spatial maps"
        )
    return s, t


STEM = "stem"
"""The input layer's map, where a model names it: not a stage, so matching every shared map leaves
it out, as RepDistiller's AT, NST and VID take its models' feat[1:-1] (``helper/loops.py``)."""


def shared_maps(student: ModelOutput, teacher: ModelOutput | None) -> list[str]:
    """Names of the spatial maps [B, C, H, W] that both models expose, in the student's order (the
    ``stem`` excepted)."""
    if teacher is None:
        raise IncompatibleCombination("this method needs a teacher's features")
    names = [name for name, value in student.features.items() if name != STEM
             and value.dim() == 4 and name in teacher.features and teacher.features[name].dim() == 4]
    if not names:
        raise IncompatibleCombination(_no_shared_map(student.features, teacher.features))
    return names


def _no_shared_map(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> str:
    """Why no stage pairs up, saying what is missing: a name both models share may be there
    (graph node features are [N, C] vectors under identical names) but not as a 4-D map."""
    wanted = "no spatial feature map: this method needs a 4-D [B, C, H, W] feature under the same name in both models"
    shared = [name for name in student if name in teacher]
    if not shared:
        return (f"{wanted}, and they share no feature name (student: {', '.join(student) or 'none'}; "
                f"teacher: {', '.join(teacher) or 'none'})")
    shapes = "; ".join(f"{name}: student {list(student[name].shape)}, teacher {list(teacher[name].shape)}"
                       for name in shared)
    return f"{wanted}; the features they share are not 4-D maps ({shapes})"


def resize(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Maps [B, C, H, W] (or [B, H, W]) brought to spatial ``size``: averaged down, bilinear up."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    flat = maps.unsqueeze(1) if maps.dim() == 3 else maps
    if flat.shape[-2] >= size[0] and flat.shape[-1] >= size[1]:
        out = F.adaptive_avg_pool2d(flat, size)
    else:
        out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.squeeze(1) if maps.dim() == 3 else out


def common_size(student_maps: torch.Tensor, teacher_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps average-pooled to the smaller of their spatial sizes (the larger one shrinks).

    What mdistiller and RepDistiller do before AT and NST compare two stages (their
    ``adaptive_avg_pool2d`` of the larger feature map): the features are pooled, never the
    attention or selectivity computed from them, and nothing is ever upsampled.
    """
    size = (min(student_maps.shape[-2], teacher_maps.shape[-2]), min(student_maps.shape[-1], teacher_maps.shape[-1]))
    return resize(student_maps, size), resize(teacher_maps, size)


def hint_regressor(guided: torch.Tensor, hint: torch.Tensor) -> nn.Module:
    """FitNets' regressor from a student feature shaped like ``guided`` to one shaped like ``hint``.

    As mdistiller's and RepDistiller's ``ConvReg``: a convolution with bias, BatchNorm and a
    ReLU (the regressor shares the hint layer's non-linearity, FitNets §2.2). The convolution
    is picked by the spatial sizes: a student map twice the hint's is halved (3×3, stride 2,
    padding 1), half the hint's is doubled (4×4 transposed, stride 2, padding 1), and any
    other larger-or-equal one shrinks through a "valid" kernel of (1 + Hs − Ht) × (1 + Ws − Wt)
    (1×1 for equal sizes). A student map smaller than the hint by another factor is refused, as
    theirs is. Vectors get the same shape of map: a linear layer with bias, BatchNorm and a ReLU.
    """
    if guided.dim() == 2:
        return nn.Sequential(nn.Linear(guided.shape[1], hint.shape[1]), nn.BatchNorm1d(hint.shape[1]), nn.ReLU())
    (channels, sh, sw), (out_channels, th, tw) = guided.shape[1:], hint.shape[1:]
    if sh == 2 * th and sw == 2 * tw:
        conv: nn.Module = nn.Conv2d(channels, out_channels, kernel_size=3, stride=2, padding=1)
    elif 2 * sh == th and 2 * sw == tw:
        conv = nn.ConvTranspose2d(channels, out_channels, kernel_size=4, stride=2, padding=1)
    elif sh >= th and sw >= tw:
        conv = nn.Conv2d(channels, out_channels, kernel_size=(1 + sh - th, 1 + sw - tw))
    else:
        raise IncompatibleCombination(
            f"the student map {sh}×{sw} is smaller than the hint {th}×{tw} by other than a factor of 2; "
            "FitNets' regressor (mdistiller's ConvReg) does not map it")
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU())


def regressor(like: torch.Tensor, out_channels: int, hidden: int | None = None) -> nn.Module:
    """A learned map from a student feature shaped ``like`` to ``out_channels`` (channels or dims).

    A 1×1 convolution for maps (it keeps the spatial layout), a linear layer for vectors;
    with ``hidden``, three such layers with ReLUs between them (VID's mean estimator).
    """
    def layer(a: int, b: int) -> nn.Module:
        if like.dim() == 4:
            return nn.Conv2d(a, b, kernel_size=1, bias=False)
        return nn.Linear(a, b, bias=False)

    if hidden is None:
        return layer(like.shape[1], out_channels)
    return nn.Sequential(layer(like.shape[1], hidden), nn.ReLU(), layer(hidden, hidden), nn.ReLU(),
                         layer(hidden, out_channels))
