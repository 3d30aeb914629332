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


def shared_maps(student: ModelOutput, teacher: ModelOutput | None) -> list[str]:
    """Names of the spatial maps [B, C, H, W] that both models expose, in the student's order."""
    if teacher is None:
        raise IncompatibleCombination("this method needs a teacher's features")
    names = [name for name, value in student.features.items()
             if value.dim() == 4 and name in teacher.features and teacher.features[name].dim() == 4]
    if not names:
        raise IncompatibleCombination(
            "no spatial feature map has the same name in student "
            f"({', '.join(student.features) or 'none'}) and teacher "
            f"({', '.join(teacher.features) or 'none'})"
        )
    return names


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
