"""Tie-aware ranks and row-wise correlations against scipy; per-class means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, rankdata, spearmanr

from probe.evaluation import average_ranks, nanmean, pearson_rows, per_class_mean, spearman_rows


def test_average_ranks_match_scipy_with_ties():
    x = torch.randint(0, 4, (5, 30), generator=torch.Generator().manual_seed(0)).float()
    assert np.allclose(average_ranks(x).numpy(), rankdata(x.numpy(), axis=1))


def test_correlations_match_scipy_and_constant_rows_are_nan():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 6, (4, 40), generator=g).float()
    b = a + torch.randn(4, 40, generator=g)
    for i in range(4):
        assert pearson_rows(a, b)[i].item() == pytest.approx(pearsonr(a[i].numpy(), b[i].numpy())[0])
        assert spearman_rows(a, b)[i].item() == pytest.approx(spearmanr(a[i].numpy(), b[i].numpy())[0])
    flat = torch.zeros(1, 10)
    assert math.isnan(pearson_rows(flat, torch.rand(1, 10)).item())


def test_nanmean_and_per_class_mean():
    assert nanmean(torch.tensor([1.0, float("nan"), 3.0])) == 2.0
    assert nanmean([float("nan")]) is None
    values = torch.tensor([1.0, 0.0, float("nan"), 0.5])
    assert per_class_mean(values, torch.tensor([0, 0, 1, 2]), 4) == [0.5, None, 0.5, None]
