"""Perturbation curves and their AUC on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backbones.preprocessing import IMAGENET, RAW, Normalization
from probe.errors import ProbeValueError
from probe.evaluation import (
    STEPS,
    blurred,
    faithfulness,
    perturbation_auc,
    perturbation_hits,
    removal_masks,
    removal_ranks,
)
from probe.evaluation.faithfulness import pixels_removed
from tests.support.models import RegionModel


def test_auc_of_known_curves():
    assert perturbation_auc(STEPS, [1.0] * 10) == pytest.approx(1.0)
    assert perturbation_auc(STEPS, [0.0] * 10) == pytest.approx(0.0)
    # survival 1 - s: integral over [0, 0.9] is 0.9 - 0.405 = 0.495, divided by 0.9
    assert perturbation_auc(STEPS, [1 - s for s in STEPS]) == pytest.approx(0.55)
    # one step at 1 then 0: 0.1 * 1 + 0.1 * 0.5 = 0.15 -> 0.15 / 0.9
    assert perturbation_auc(STEPS, [1, 1] + [0] * 8) == pytest.approx(0.15 / 0.9)
    with pytest.raises(ProbeValueError):
        perturbation_auc([0.0, 0.1], [1.0])


def test_removal_order_positive_descending_negative_ascending_ties_row_major():
    maps = torch.tensor([[[3.0, 1.0], [2.0, 4.0]]])
    assert removal_ranks(maps, "positive").tolist() == [[1, 3, 2, 0]]
    assert removal_ranks(maps, "negative").tolist() == [[2, 0, 1, 3]]
    ties = torch.zeros(1, 2, 2)
    assert removal_ranks(ties, "positive").tolist() == [[0, 1, 2, 3]]
    assert removal_masks(maps, 0.5, "positive").tolist() == [[[True, False], [False, True]]]
    with pytest.raises(ProbeValueError, match="valid: positive, negative"):
        removal_ranks(maps, "sideways")


def test_pixels_removed_is_floor_without_float_drift():
    assert pixels_removed(0.3, 100) == 30
    assert pixels_removed(0.7, 50176) == 35123  # floor(35123.2)
    assert pixels_removed(0.0, 50176) == 0


def _region_setup(n: int = 1):
    region = torch.zeros(10, 10)
    region[:3] = 1  # the first three rows: 30 pixels
    maps = region.expand(n, 10, 10).clone()  # relevance 1 inside the region, 0 outside
    return region, maps


@pytest.mark.parametrize("normalised", [True, False])
def test_perturbation_on_a_model_whose_response_is_known(normalised):
    region, maps = _region_setup()
    if normalised:  # white image, normalised with mean = std = 0.5: 1 everywhere; black = -1
        images, normalization, offset = torch.ones(1, 3, 10, 10), Normalization((0.5,) * 3, (0.5,) * 3), 0.0
    else:  # [0, 1] input, black = 0; the score is the region mean minus 0.5
        images, normalization, offset = torch.ones(1, 3, 10, 10), RAW, 0.5
    model = RegionModel(region, offset=offset)
    # class 0 survives while fewer than 15 of the region's 30 pixels are black
    result = faithfulness(model, images, maps, 0, normalization=normalization)
    # positive: the region goes first; 10 px at 10 % (alive), 20 px at 20 % (dead)
    assert result.positive.hits[0].tolist() == [True, True] + [False] * 8
    # negative: the 70 zero-relevance pixels go first; at 80 % 10 region px are gone, at 90 % 20
    assert result.negative.hits[0].tolist() == [True] * 9 + [False]
    assert result.positive.auc == pytest.approx(0.15 / 0.9)
    assert result.negative.auc == pytest.approx(0.85 / 0.9)
    assert result.gap == pytest.approx(0.7 / 0.9)


def test_perturbation_batches_give_the_same_hits_and_track_each_target():
    region, maps = _region_setup(5)
    images = torch.ones(5, 3, 10, 10)
    images[3] = 0.2  # this image starts below the threshold: class 1 from the start
    model = RegionModel(region, offset=0.5)
    target = torch.tensor([0, 0, 0, 1, 1])
    full = perturbation_hits(model, images, maps, target, normalization=RAW, batch_size=64)
    small = perturbation_hits(model, images, maps, target, normalization=RAW, batch_size=2)
    for mode in ("positive", "negative"):
        assert torch.equal(full[mode].hits, small[mode].hits)
    pos = full["positive"].hits
    assert pos[0].tolist() == [True, True] + [False] * 8
    assert pos[3].all()  # image 3 is class 1 throughout: blacking out only lowers class 0
    assert pos[4].tolist() == [False, False] + [True] * 8  # target 1: the prediction flips to it
    assert full["positive"].survival.tolist()[0] == pytest.approx(4 / 5)
    assert full["positive"].per_image_auc().mean().item() == pytest.approx(full["positive"].auc)


def test_perturbation_rejects_mismatched_inputs():
    region, maps = _region_setup()
    model = RegionModel(region)
    with pytest.raises(ProbeValueError, match="do not match"):
        faithfulness(model, torch.ones(1, 3, 8, 8), maps, 0, normalization=RAW)
    with pytest.raises(ProbeValueError, match="3 channels"):
        faithfulness(model, torch.ones(1, 1, 10, 10), maps, 0, normalization=IMAGENET)
    with pytest.raises(ProbeValueError, match="2 entries for 1 images"):
        faithfulness(model, torch.ones(1, 3, 10, 10), maps, [0, 1], normalization=RAW)


@pytest.mark.parametrize("size, sigma", [(64, None), (40, 2.5)])
def test_blur_removal_value_is_a_mirrored_gaussian_blur(size, sigma):
    from scipy.ndimage import gaussian_filter

    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected_sigma = 3.0 if sigma is None else sigma  # default: 3/64 of the side
    expected = [
        [gaussian_filter(images[n, c].numpy(), expected_sigma, mode="mirror", truncate=3.0) for c in range(3)]
        for n in range(2)
    ]
    assert torch.allclose(blurred(images, sigma), torch.from_numpy(np.array(expected)), atol=1e-9)


def test_blur_removal_leaves_a_flat_image_unchanged_where_black_kills_it():
    region, maps = _region_setup()
    model = RegionModel(region, offset=0.5)
    images = torch.ones(1, 3, 10, 10)
    black = faithfulness(model, images, maps, 0, normalization=RAW)
    blur = faithfulness(model, images, maps, 0, normalization=RAW, removal="blur")
    assert black.positive.hits[0].tolist() == [True, True] + [False] * 8
    assert blur.positive.hits.all() and blur.negative.hits.all()  # the blur of a flat image is the image
    with pytest.raises(ProbeValueError, match="valid: black, blur"):
        faithfulness(model, images, maps, 0, normalization=RAW, removal="noise")


def _dropout_net() -> torch.nn.Module:
    """A small classifier whose train-mode behaviour differs: batch statistics and dropout."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 3),
    )


def test_a_model_left_in_train_mode_is_evaluated_in_inference_mode():
    from probe.evaluation import explain_in_batches
    from tests.support.models import input_x_gradient

    g = torch.Generator().manual_seed(1)
    images = torch.randn(12, 3, 12, 12, generator=g)
    maps = torch.randn(12, 12, 12, generator=g)
    model = _dropout_net().eval()
    target = model(images).argmax(dim=1)
    reference = faithfulness(model, images, maps, target, normalization=RAW, batch_size=12)
    model.train()
    model[3].eval()  # a mixed state, to be restored module by module
    for batch_size in (12, 5, 1):
        result = faithfulness(model, images, maps, target, normalization=RAW, batch_size=batch_size)
        assert torch.equal(result.positive.hits, reference.positive.hits)
        assert torch.equal(result.negative.hits, reference.negative.hits)
        assert result.positive.hits[:, 0].all()  # the clean step keeps every image, as in eval mode
    assert [m.training for m in model] == [True, True, True, False, True, True, True]
    eval_maps = explain_in_batches(input_x_gradient, model.eval(), images, target, batch_size=12, device="cpu")
    model.train()
    train_maps = explain_in_batches(input_x_gradient, model, images, target, batch_size=4, device="cpu")
    assert torch.allclose(train_maps, eval_maps) and model.training


def test_known_clean_predictions_replace_the_clean_forward_pass():
    region, maps = _region_setup(4)
    images = torch.ones(4, 3, 10, 10)
    images[3] = 0.2  # class 1 from the start
    model = RegionModel(region, offset=0.5)
    target = torch.tensor([0, 0, 0, 0])
    batches = []
    model.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    computed = perturbation_hits(model, images, maps, target, normalization=RAW, batch_size=2)
    forwards = len(batches)
    given = perturbation_hits(
        model, images, maps, target, normalization=RAW, batch_size=2, clean=torch.tensor([True, True, True, False])
    )
    assert len(batches) - forwards == forwards - 2  # one clean forward per batch of 2 saved
    for mode in ("positive", "negative"):
        assert torch.equal(given[mode].hits, computed[mode].hits)
    assert computed["positive"].hits[:, 0].tolist() == [True, True, True, False]
    with pytest.raises(ProbeValueError, match=r"one flag per image, \[4\]"):
        perturbation_hits(model, images, maps, target, normalization=RAW, clean=torch.ones(3, dtype=torch.bool))
