"""Segmentation test, pointing game and mask energy on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from probe.errors import ProbeValueError
from probe.evaluation import (
    average_precision,
    binarize,
    centre_pointing_game,
    constant_maps,
    mask_energy,
    mask_fraction,
    paper_binary_map,
    pointing_game,
    segmentation_counts,
)

MAP = torch.tensor([[[0.9, 0.1, 0.5], [0.3, 0.8, 0.0]]])
MASK = torch.tensor([[[1, 0, 0], [1, 1, 0]]], dtype=torch.bool)


def test_binarize_rules():
    # mean = 2.6 / 6 = 0.433...
    assert binarize(MAP, "mean").int().tolist() == [[[1, 0, 1], [0, 1, 0]]]
    assert binarize(MAP, "zero").int().tolist() == [[[1, 1, 1], [1, 1, 0]]]
    # the mean rule ignores offset and positive scale
    assert torch.equal(binarize(3 * MAP - 7, "mean"), binarize(MAP, "mean"))
    with pytest.raises(ProbeValueError, match="valid: mean, zero"):
        binarize(MAP, "otsu")


def test_segmentation_scores_by_hand():
    scores = segmentation_counts(MAP, MASK).scores()
    # prediction [[1,0,1],[0,1,0]] vs mask [[1,0,0],[1,1,0]]: 4 of 6 pixels right
    assert scores["pixel_accuracy"] == pytest.approx(4 / 6)
    # object: intersection 2, union 4; background: intersection 2, union 4
    assert scores["miou"] == pytest.approx(0.5)
    # ranking 0.9+ 0.8+ 0.5- 0.3+ 0.1- 0.0-: precisions at the positives 1, 1, 3/4
    assert scores["average_precision"] == pytest.approx((1 + 1 + 0.75) / 3)
    a = 4 / 6
    assert scores["paper_binary_map"] == pytest.approx(a * a + (1 - a) / 2)


def test_paper_binary_map_equals_sklearn_on_the_two_channel_binary_output():
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(4, 7, 9, generator=g)
    masks = torch.rand(4, 7, 9, generator=g) > 0.6
    pred = binarize(maps)
    for i in range(4):
        scores = torch.stack([~pred[i], pred[i]]).float().flatten().numpy()
        truth = torch.stack([~masks[i], masks[i]]).float().flatten().numpy()
        accuracy = (pred[i] == masks[i]).double().mean()
        assert float(paper_binary_map(accuracy)) == pytest.approx(average_precision_score(truth, scores))


def test_average_precision_matches_sklearn_with_ties_and_is_nan_without_object():
    g = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 5, (6, 8, 8), generator=g).float()  # many ties
    masks = torch.rand(6, 8, 8, generator=g) > 0.7
    masks[5] = False
    ap = average_precision(maps, masks)
    for i in range(5):
        expected = average_precision_score(masks[i].flatten().numpy(), maps[i].flatten().numpy())
        assert ap[i].item() == pytest.approx(expected)
    assert math.isnan(ap[5].item())


def test_counts_add_up_over_batches():
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(6, 5, 5, generator=g)
    masks = torch.rand(6, 5, 5, generator=g) > 0.5
    whole = segmentation_counts(maps, masks)
    parts = segmentation_counts(maps[:2], masks[:2]) + segmentation_counts(maps[2:], masks[2:])
    assert parts.correct == whole.correct and parts.intersection == whole.intersection and parts.union == whole.union
    for key, value in whole.scores().items():
        assert parts.scores()[key] == pytest.approx(value)


def _point_map(h: int, w: int, y: int, x: int) -> torch.Tensor:
    m = torch.zeros(1, h, w)
    m[0, y, x] = 1.0
    return m


def test_pointing_game_tolerance_is_euclidean_in_pixels():
    maps = _point_map(32, 32, 5, 5)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 5, 20] = True  # 15 px to the right of the maximum
    assert pointing_game(maps, mask, tolerance=15).item() == 0.0  # strict, as TorchRay: d < 15
    assert pointing_game(maps, mask, tolerance=15.01).item() == 1.0
    mask[0, 5, 19] = True  # 14 px
    assert pointing_game(maps, mask, tolerance=15).item() == 1.0
    diagonal = torch.zeros(1, 32, 32, dtype=torch.bool)
    diagonal[0, 16, 16] = True  # sqrt(11² + 11²) = 15.56 px away
    assert pointing_game(maps, diagonal, tolerance=15).item() == 0.0
    inside = torch.zeros(1, 32, 32, dtype=torch.bool)
    inside[0, 5, 5] = True
    assert pointing_game(maps, inside, tolerance=0).item() == 1.0
    assert math.isnan(pointing_game(maps, torch.zeros(1, 32, 32, dtype=torch.bool)).item())


def test_a_constant_map_points_nowhere():
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[:, 0, 0] = True  # the row-major first pixel is on the object: a constant map used to "hit" it
    maps = torch.zeros(3, 8, 8)
    maps[1] = 0.3
    maps[2, 4, 4] = 1.0
    result = pointing_game(maps, mask)
    assert math.isnan(result[0].item()) and math.isnan(result[1].item())
    assert result[2].item() == 1.0  # a real maximum 5.7 px from the object
    assert constant_maps(maps).tolist() == [True, True, False]


def test_pointing_game_first_maximum_wins_ties():
    maps = torch.zeros(1, 40, 40)
    maps[0, 0, 0] = maps[0, 39, 39] = 2.0
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 39, 39] = True
    assert pointing_game(maps, mask).item() == 0.0  # (0, 0) comes first in row-major order


def test_centre_baseline_even_and_odd_sizes():
    odd = torch.zeros(3, 31, 31, dtype=torch.bool)
    odd[0, 1, 15] = True  # 14 px above the centre (15, 15)
    odd[1, 0, 0] = True  # 21.2 px away
    odd[2, 0, 15] = True  # exactly 15 px: a miss (strict)
    assert centre_pointing_game(odd).tolist() == [1.0, 0.0, 0.0]
    even = torch.zeros(2, 32, 32, dtype=torch.bool)
    even[0, 15, 30] = True  # centre (15.5, 15.5): sqrt(0.25 + 14.5²) = 14.5 px
    even[1, 15, 31] = True  # sqrt(0.25 + 15.5²) = 15.5 px
    assert centre_pointing_game(even).tolist() == [1.0, 0.0]


def test_mask_energy_counts_positive_relevance_only():
    maps = torch.tensor([[[2.0, -1.0], [1.0, 0.0]], [[-1.0, -2.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = torch.tensor([[[1, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]], dtype=torch.bool)
    energy = mask_energy(maps, masks)
    assert energy[0].item() == pytest.approx(2 / 3)
    assert math.isnan(energy[1].item())  # no positive relevance
    assert math.isnan(energy[2].item())  # empty mask
    assert mask_fraction(masks).tolist()[0] == pytest.approx(0.25)
    uniform = torch.ones(1, 4, 4)
    some = torch.zeros(1, 4, 4, dtype=torch.bool)
    some[0, :1] = True
    assert mask_energy(uniform, some).item() == pytest.approx(mask_fraction(some).item())


def test_shape_errors_name_the_argument():
    with pytest.raises(ProbeValueError, match="masks has shape"):
        mask_energy(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5, dtype=torch.bool))
    with pytest.raises(ProbeValueError, match=r"maps must have shape \[N, H, W\]"):
        pointing_game(torch.zeros(4, 4), torch.zeros(4, 4, dtype=torch.bool))
    assert np.isfinite(pointing_game(torch.eye(4)[None], torch.ones(1, 4, 4)).numpy()).all()  # a 0/1 float mask


def test_non_finite_maps_are_refused_with_the_image_index():
    maps = torch.zeros(3, 4, 4)
    maps[2, 1, 1] = float("nan")
    with pytest.raises(ProbeValueError, match=r"NaN or infinite values \(images \[2\]\)"):
        mask_energy(maps, torch.ones(3, 4, 4, dtype=torch.bool))
