"""Seeded, stratified bootstrap intervals: scipy as the reference, coverage, pairing, strata, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import bootstrap

from probe.errors import ProbeValueError
from probe.evaluation.intervals import (
    RESAMPLES,
    Estimate,
    Resampling,
    bootstrap_mean,
    constant,
    difference,
    estimate,
    seed_sequence,
)


def test_one_stratum_matches_scipys_percentile_interval():
    x = np.random.default_rng(3).normal(0.5, 0.3, size=150)
    ours = bootstrap_mean(x, seed=1)
    ref = bootstrap((x,), np.mean, n_resamples=40000, method="percentile", rng=np.random.default_rng(2))
    assert ours.value == pytest.approx(x.mean(), abs=1e-12)
    # Monte-Carlo error of a 2.5 % quantile from 2,000 replicates: about 0.003 here (the mean's sd is 0.025)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.008)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.008)


def test_intervals_cover_the_true_mean_95_times_in_100():
    rng = np.random.default_rng(11)
    hits = 0
    trials = 300
    for t in range(trials):
        x = rng.binomial(1, 0.3, size=80).astype(float)  # pointing-game-like 0/1 values
        e = bootstrap_mean(x, seed=t, resamples=1000)
        hits += e.low <= 0.3 <= e.high
    assert 0.90 <= hits / trials <= 0.985


def test_the_same_seed_gives_the_same_bytes_and_keys_give_other_draws():
    x = np.linspace(0, 1, 40)
    a = bootstrap_mean(x, seed=seed_sequence(0, "simclr", "agf"))
    b = bootstrap_mean(x, seed=seed_sequence(0, "simclr", "agf"))
    c = bootstrap_mean(x, seed=seed_sequence(0, "moco", "agf"))
    assert (a.low, a.high) == (b.low, b.high) and np.array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, c.draws)
    with pytest.raises(ProbeValueError, match="seed key"):
        seed_sequence(0, -1)


def test_strata_keep_their_sizes_in_every_replicate():
    strata = np.array([0] * 5 + [1] * 12 + [2] * 3)
    r = Resampling.stratified(strata.size, strata, seed=4)
    assert r.counts.shape == (RESAMPLES, 20)
    for s, size in ((0, 5), (1, 12), (2, 3)):
        assert (r.counts[:, strata == s].sum(axis=1) == size).all()
    # a stratum on its own is a plain bootstrap of that stratum
    assert (r.subset(strata == 1).counts.sum(axis=1) == 12).all()


def test_stratification_removes_the_between_strata_variance():
    # two strata with very different values: a stratified resample keeps their shares fixed, a plain one does not
    x = np.r_[np.zeros(30), np.ones(30)]
    strata = np.r_[np.zeros(30), np.ones(30)]
    plain = bootstrap_mean(x, seed=0)
    stratified = bootstrap_mean(x, strata, seed=0)
    assert stratified.low == stratified.high == 0.5
    assert plain.high - plain.low > 0.2


def test_undefined_values_are_left_out_and_too_few_give_no_interval():
    e = bootstrap_mean([1.0, np.nan, 0.0, 1.0, np.nan], seed=0)
    assert e.value == pytest.approx(2 / 3) and e.has_interval
    assert bootstrap_mean([np.nan, np.nan], seed=0) is None
    lone = bootstrap_mean([0.7, np.nan, np.nan], seed=0)
    assert lone.value == pytest.approx(0.7) and not lone.has_interval
    assert lone.format() == "0.70 [–]"


def test_paired_differences_are_narrower_than_independent_ones():
    rng = np.random.default_rng(5)
    a = rng.normal(0.5, 0.2, size=100)
    b = a - 0.05 + rng.normal(0, 0.01, size=100)  # the same images, a small shift
    same = Resampling.stratified(100, seed=1)
    paired = difference(same.mean(a), same.mean(b))
    independent = difference(Resampling.stratified(100, seed=1).mean(a), Resampling.stratified(100, seed=2).mean(b))
    assert paired.value == pytest.approx(a.mean() - b.mean())
    assert paired.low > 0.04 and paired.high < 0.06
    assert independent.high - independent.low > 5 * (paired.high - paired.low)
    # independent: the width of a difference of two independent means, sqrt(2) times each one's
    one = same.mean(a)
    assert (independent.high - independent.low) == pytest.approx(np.sqrt(2) * (one.high - one.low), rel=0.15)


def test_difference_to_a_constant_and_without_draws():
    e = bootstrap_mean(np.linspace(0.1, 0.3, 30), seed=0)
    d = difference(e, constant(0.05))
    assert d.value == pytest.approx(e.value - 0.05)
    assert d.low == pytest.approx(e.low - 0.05) and d.high == pytest.approx(e.high - 0.05)
    assert difference(e, Estimate(0.1)) == Estimate(e.value - 0.1)
    assert difference(e, None) is None


def test_ratio_of_sums_pools_over_images():
    correct = np.array([90.0, 10.0, 50.0, 70.0])
    pixels = np.array([100.0, 100.0, 100.0, 100.0])
    e = Resampling.stratified(4, seed=0).ratio(correct, pixels)
    assert e.value == pytest.approx(220 / 400) and 0.1 <= e.low < e.value < e.high <= 0.9


def test_estimate_formats_and_serialises():
    e = Estimate(0.5432, 0.4911, 0.5877, np.zeros(3))
    assert str(e) == "0.54 [0.49, 0.59]"
    assert e.to_json() == {"value": 0.5432, "low": 0.4911, "high": 0.5877}
    assert e == Estimate(0.5432, 0.4911, 0.5877)  # draws take no part in equality
    assert estimate(None, None) is None and estimate(float("nan"), None) is None
    assert not estimate(0.3, np.full(10, np.nan)).has_interval
