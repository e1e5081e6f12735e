"""Class specificity on two-object images, and the cascading-randomisation sanity check."""

from __future__ import annotations

import pytest
import torch

from probe.errors import ProbeValueError
from probe.evaluation import (
    SANITY_MAX_FINAL_SIMILARITY,
    cascading_randomization,
    class_specificity,
    parameter_layers,
    two_object_pairs,
)
from probe.evaluation.sanity import layer_groups, randomize_layer
from tests.support.models import HalvesModel, gradient_of_total, input_x_gradient, small_cnn


def _two_objects(n: int = 3):
    """Images with a bright object in the left half and another in the right half."""
    images = torch.zeros(n, 3, 32, 32)
    left = torch.zeros(n, 32, 32, dtype=torch.bool)
    right = torch.zeros(n, 32, 32, dtype=torch.bool)
    for i in range(n):
        left[i, 4 + i : 10 + i, 2:8] = True
        right[i, 20 - i : 26 - i, 22:28] = True
        images[i, :, left[i]] = 1.0
        images[i, :, right[i]] = 0.8
    return images, left, right


def test_class_specific_explainer_points_at_each_object():
    images, left, right = _two_objects()
    result = class_specificity(HalvesModel(), images, [0, 0, 0], [1, 1, 1], left, right, explain_fn=input_x_gradient)
    summary = result.summary()
    assert summary["pointing_explained"] == 1.0
    assert summary["pointing_other"] == 0.0  # the objects are more than 15 px apart
    assert summary["pearson"] < 0  # disjoint supports on a mostly-zero background
    assert summary["images"] == 3


def test_class_insensitive_explainer_is_caught():
    images, left, right = _two_objects()
    result = class_specificity(HalvesModel(), images, [0, 0, 0], [1, 1, 1], left, right, explain_fn=gradient_of_total)
    summary = result.summary()
    assert summary["pearson"] == pytest.approx(1.0)  # the same map for both classes
    assert summary["spearman"] == pytest.approx(1.0)
    assert summary["pointing_other"] == pytest.approx(0.5)  # each map hits one object: half the time the wrong one


def test_specificity_input_checks():
    images, left, right = _two_objects(1)
    with pytest.raises(ProbeValueError, match="two different pseudo-classes"):
        class_specificity(HalvesModel(), images, [1], [1], left, right, explain_fn=input_x_gradient)
    with pytest.raises(ProbeValueError, match="masks_b has shape"):
        class_specificity(HalvesModel(), images, [0], [1], left, right[:, :8], explain_fn=input_x_gradient)


def test_two_object_pairs_keeps_usable_images_in_sorted_label_order():
    m = torch.zeros(4, 4, dtype=torch.bool)
    objects = [
        {"dog": m, "cat": ~m},  # usable: cat -> 1, dog -> 0
        {"dog": m},  # one object
        {"dog": m, "wolf": m},  # both map to pseudo-class 0
        {"dog": m, "zebra": m},  # zebra unmapped
    ]
    pairs = two_object_pairs(objects, {"dog": 0, "cat": 1, "wolf": 0})
    assert pairs.indices == [0]
    assert pairs.labels == [("cat", "dog")]
    assert pairs.targets_a.tolist() == [1] and pairs.targets_b.tolist() == [0]
    assert pairs.masks_a.all() and not pairs.masks_b.any()
    with pytest.raises(ProbeValueError, match="no usable two-object image"):
        two_object_pairs([{"dog": m}], {"dog": 0})


def test_layer_helpers():
    model = small_cnn()
    assert parameter_layers(model) == ["0", "2", "6"]
    flat = layer_groups(["f", "e", "d", "c", "b"], 2)  # too flat for 2 steps: near-equal runs
    assert [names for _, names in flat] == [["f", "e"], ["d", "c", "b"]] and flat[1][0] == "d … b"
    assert layer_groups(["b", "a"], 8) == [("b", ["b"]), ("a", ["a"])]
    resnet = [
        "fc",
        "layer4.1.conv2",
        "layer4.1.bn1",
        "layer4.0.conv1",
        "layer3.1.conv1",
        "layer3.0.conv1",
        "bn1",
        "conv1",
    ]
    assert [label for label, _ in layer_groups(resnet, 5)] == ["fc", "layer4", "layer3", "bn1", "conv1"]
    assert [label for label, _ in layer_groups(resnet, 7)] == [
        "fc",
        "layer4.1",
        "layer4.0",
        "layer3.1",
        "layer3.0",
        "bn1",
        "conv1",
    ]
    assert [label for label, _ in layer_groups(resnet, 8)] == resnet  # the deepest level that fits
    a, b = small_cnn(), small_cnn()
    randomize_layer(a[6], seed=3)
    randomize_layer(b[6], seed=3)
    assert torch.equal(a[6].weight, b[6].weight)
    assert not torch.equal(a[6].weight, small_cnn()[6].weight)


def test_cascading_randomization_falls_and_leaves_the_model_alone():
    model = small_cnn(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    result = cascading_randomization(model, images, [0, 1, 2, 0], explain_fn=input_x_gradient, seed=0)
    assert result.steps == ("original", "6", "2", "0")
    curve = result.mean_similarity
    assert curve[0] == pytest.approx(1.0)
    assert curve[-1] < SANITY_MAX_FINAL_SIMILARITY and result.passed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = cascading_randomization(model, images, [0, 1, 2, 0], explain_fn=input_x_gradient, seed=0)
    assert torch.equal(result.similarity, again.similarity)


def test_a_model_independent_map_fails_the_sanity_check():
    def fixed_random(model, images, target):
        g = torch.Generator().manual_seed(7)
        return torch.rand(images.shape[0], *images.shape[2:], generator=g)

    images = torch.rand(2, 3, 16, 16)
    result = cascading_randomization(small_cnn(), images, 0, explain_fn=fixed_random, max_steps=2)
    assert result.mean_similarity == pytest.approx([1.0, 1.0, 1.0])
    assert result.passed is False


def test_a_map_that_goes_flat_counts_as_no_similarity():
    calls = []

    def flat_after_first(model, images, target):
        calls.append(1)
        if len(calls) == 1:
            return torch.arange(images.shape[0] * 16.0).reshape(images.shape[0], 4, 4)
        return torch.zeros(images.shape[0], 4, 4)

    result = cascading_randomization(small_cnn(), torch.rand(2, 3, 4, 4), 0, explain_fn=flat_after_first, max_steps=1)
    assert result.mean_similarity == [1.0, 0.0]
    with pytest.raises(ProbeValueError, match="unknown layer name"):
        cascading_randomization(small_cnn(), torch.rand(1, 3, 4, 4), 0, explain_fn=flat_after_first, layers=["nope"])
