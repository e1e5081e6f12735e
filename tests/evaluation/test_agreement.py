"""Agreement replicates: the table scores equal scikit-learn's and unsupervised's; seeds and images both vary."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from probe.evaluation.agreement import agreement_draws, table_scores
from probe.evaluation.intervals import estimate, replicate_counts, seed_sequence
from unsupervised import cluster_metrics


@pytest.mark.parametrize("k, labels, n", [(6, 6, 300), (3, 8, 50), (10, 2, 40), (1, 3, 20), (4, 1, 20)])
def test_table_scores_equal_the_reference_implementations(k, labels, n):
    rng = np.random.default_rng(k * 100 + labels)
    truth = rng.integers(0, labels, n)
    clusters = np.where(rng.random(n) < 0.6, truth % k, rng.integers(0, k, n))  # partly agreeing
    table = np.zeros((k, labels))
    np.add.at(table, (clusters, truth), 1)
    scores = {name: float(v[0]) for name, v in table_scores(table).items()}
    ref = cluster_metrics(clusters, truth, k=k)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(truth, clusters), abs=1e-12)
    assert scores["ari"] == pytest.approx(adjusted_rand_score(truth, clusters), abs=1e-12)
    assert scores["accuracy"] == pytest.approx(ref.hungarian_accuracy, abs=1e-12)
    assert scores["purity"] == pytest.approx(ref.purity, abs=1e-12)


def _two_backbones(n: int = 600):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, n)
    good = [np.where(rng.random(n) < 0.85, truth, rng.integers(0, 4, n)) for _ in range(3)]
    noise = [rng.integers(0, 4, n) for _ in range(3)]
    return truth, good, noise


def test_intervals_cover_the_value_and_vary_with_both_seed_and_images():
    truth, good, _ = _two_backbones()
    draws = agreement_draws(
        good,
        truth,
        k=4,
        labels=4,
        images_seed=seed_sequence(0, "images"),
        choice_seed=seed_sequence(0, "good"),
        resamples=500,
    )
    value = normalized_mutual_info_score(truth, good[0])
    e = estimate(value, draws.nmi)
    assert e.low < value < e.high and e.high - e.low < 0.15
    images_only = agreement_draws(
        good[:1], truth, k=4, labels=4, images_seed=seed_sequence(0, "images"), choice_seed=0, resamples=500
    )
    # the other seeds' clusterings differ, so the interval over seeds and images is wider than over images alone
    assert np.std(draws.nmi) > np.std(images_only.nmi)
    # each pseudo-class's purity: the run's clustering on the same resamples
    purity0 = (truth[good[0] == 0] == np.bincount(truth[good[0] == 0]).argmax()).mean()
    assert estimate(purity0, draws.class_purity[:, 0]).low < purity0 < estimate(purity0, draws.class_purity[:, 0]).high


def test_two_backbones_on_the_same_images_are_paired():
    truth, good, noise = _two_backbones()
    kw = dict(k=4, labels=4, images_seed=seed_sequence(3, "images"), resamples=400)
    a = agreement_draws(good[:1], truth, choice_seed=1, **kw)
    b = agreement_draws(good[:1], truth, choice_seed=2, **kw)
    assert np.array_equal(a.nmi, b.nmi)  # same clustering, same image resamples: identical replicates
    c = agreement_draws(noise, truth, choice_seed=2, **kw)
    again = agreement_draws(noise, truth, choice_seed=2, **kw)
    assert np.array_equal(c.ari, again.ari) and np.array_equal(c.class_purity, again.class_purity)
    # random clusterings: ARI near 0 with an interval that holds 0
    assert estimate(0.0, c.ari).low < 0 < estimate(0.0, c.ari).high


def test_a_near_zero_nmi_lies_inside_its_interval_although_resamples_inflate_it():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 6, 1200)
    noise = [rng.integers(0, 6, 1200) for _ in range(3)]
    value = normalized_mutual_info_score(truth, noise[0])
    draws = agreement_draws(
        noise,
        truth,
        k=6,
        labels=6,
        images_seed=seed_sequence(1, "images"),
        choice_seed=seed_sequence(1, "noise"),
        resamples=500,
    )
    tables = np.zeros((500, 6, 6))
    for b, counts in enumerate(replicate_counts(1200, seed=seed_sequence(1, "images"), resamples=500)):
        np.add.at(tables[b], (noise[0], truth), counts)
    raw = table_scores(tables)["nmi"]
    assert raw.mean() > value and np.quantile(raw, 0.025) > value  # duplicated images look clustered
    e = estimate(value, draws.nmi)
    assert e.low < value < e.high  # the shifted replicates sit around the run's own figure
    assert draws.nmi.mean() == pytest.approx(value, abs=1e-12)
