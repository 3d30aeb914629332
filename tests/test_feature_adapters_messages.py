"""What a feature method says when the two models have no spatial map to compare (issue #17).

Graph models expose node features [N, C] under identical names in student and teacher, so a
message about names "not matching" would list two equal lists; it must say what is missing.
"""

from __future__ import annotations

import pytest
import torch
from kdbench_graph.models import NodeClassifier
from kdbench_methods.at import AT
from kdbench_methods.feature_adapters import shared_maps
from torch import nn

from kdbench import IncompatibleCombination, ModelOutput
from tests.methods_fixtures import tiny_task


def graph_outputs() -> tuple[ModelOutput, ModelOutput]:
    """A node-wise student and teacher as the graph plugin builds them, on 7 nodes of 5 features."""
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    student = NodeClassifier([nn.Linear(5, 4), nn.Linear(4, 3)], 0.0, reads_edges=False)
    teacher = NodeClassifier([nn.Linear(5, 16), nn.Linear(16, 3)], 0.0, reads_edges=False)
    return student(x), teacher(x)


def test_graph_features_are_named_alike_but_are_not_spatial_maps():
    student, teacher = graph_outputs()
    assert set(student.features) == set(teacher.features)  # the premise: the names are the same
    with pytest.raises(IncompatibleCombination) as caught:
        AT(tiny_task(), []).setup(student, [teacher])
    message = str(caught.value)
    assert "has the same name in" not in message
    assert message.startswith("no spatial feature map")  # what the graph suite's n/a test looks for
    assert "4-D [B, C, H, W]" in message and "not 4-D maps" in message
    for name in student.features:
        assert (f"{name}: student {list(student.features[name].shape)}, "
                f"teacher {list(teacher.features[name].shape)}") in message
    assert "[7, 4]" in message and "[7, 16]" in message
    assert "\n" not in message


def test_models_sharing_no_feature_name_are_told_so():
    maps = torch.zeros(2, 3, 4, 4)
    with pytest.raises(IncompatibleCombination, match=r"share no feature name \(student: a; teacher: b\)"):
        shared_maps(ModelOutput(None, {"a": maps}), ModelOutput(None, {"b": maps}))


def test_a_map_in_one_model_and_a_vector_in_the_other_is_shown_with_both_shapes():
    student = ModelOutput(None, {"stage": torch.zeros(2, 3, 4, 4)})
    teacher = ModelOutput(None, {"stage": torch.zeros(2, 8)})
    with pytest.raises(IncompatibleCombination, match=r"stage: student \[2, 3, 4, 4\], teacher \[2, 8\]"):
        shared_maps(student, teacher)
    assert shared_maps(student, ModelOutput(None, {"stage": torch.zeros(2, 5, 2, 2)})) == ["stage"]


def test_the_stem_is_no_stage_for_methods_that_match_every_shared_map():
    maps = {name: torch.zeros(2, 4, 8, 8) for name in ("stem", "stage1", "stage2")}
    both = ModelOutput(None, maps), ModelOutput(None, dict(maps))
    assert shared_maps(*both) == ["stage1", "stage2"]  # RepDistiller's feat[1:-1]
