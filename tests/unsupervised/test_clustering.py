"""k-means: deterministic, as good as scikit-learn's k-means++ on blobs, spherical, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from unsupervised import DataError, Features, kmeans


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=6000, n_features=16, centers=30, cluster_std=1.5, random_state=3)
    return x.astype(np.float32), y


def test_same_seed_same_result_other_seed_may_differ(blobs):
    x, _ = blobs
    a, b = kmeans(x, 30, seed=7), kmeans(x, 30, seed=7)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centroids, b.centroids)
    assert a.objective == b.objective
    assert a.labels.dtype == np.int64 and a.centroids.shape == (30, 16) and a.centroids.dtype == np.float32


def test_objective_matches_scikit_learn_kmeans_plus_plus(blobs):
    x, y = blobs
    ours = kmeans(x, 30, seed=0)
    reference = KMeans(30, init="k-means++", n_init=1, random_state=0).fit(x)
    assert ours.objective <= 1.01 * reference.inertia_
    assert adjusted_rand_score(y, ours.labels) > 0.95
    # the objective is the sum of squared distances to the returned centroids
    recomputed = ((x - ours.centroids[ours.labels]) ** 2).sum(dtype=np.float64)
    assert ours.objective == pytest.approx(recomputed, rel=1e-4)
    assert 2 <= ours.n_iter <= 100 and len(ours.history) == ours.n_iter
    assert all(a >= b for a, b in zip(ours.history, ours.history[1:]))  # Lloyd never makes it worse


def test_nredo_keeps_the_best_of_differently_seeded_runs(monkeypatch):
    import unsupervised.clustering as clustering

    x = np.random.default_rng(0).uniform(size=(2000, 8)).astype(np.float32)  # no structure: many local optima
    seen = []
    real_lloyd = clustering._lloyd

    def recording_lloyd(*args, **kwargs):
        result = real_lloyd(*args, **kwargs)
        seen.append(result[2][-1])
        return result

    monkeypatch.setattr(clustering, "_lloyd", recording_lloyd)
    best = kmeans(x, 30, seed=0, niter=2, nredo=3)
    assert len(seen) == 3 and len(set(seen)) == 3  # three runs from three different seedings
    assert best.objective == min(seen)


def test_spherical_clusters_directions():
    rng = np.random.default_rng(0)
    directions = np.eye(4, dtype=np.float32)
    x = np.concatenate([d * rng.uniform(0.5, 20, size=(50, 1)) + rng.normal(0, 0.02, (50, 4)) for d in directions])
    x = x.astype(np.float32)
    truth = np.repeat(np.arange(4), 50)
    result = kmeans(x, 4, spherical=True, seed=1)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, rtol=1e-5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert result.objective == pytest.approx(((unit - result.centroids[result.labels]) ** 2).sum(), rel=1e-3)
    assert adjusted_rand_score(truth, kmeans(x, 4, seed=1).labels) < 1.0  # plain k-means splits by length


@pytest.mark.parametrize(
    "k, message", [(1, "at least 2"), (0, "at least 2"), (101, "exceeds"), (2.5, "integer"), (True, "integer")]
)
def test_bad_k(k, message):
    with pytest.raises(DataError, match=message):
        kmeans(np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32), k)


def test_nonfinite_features_are_named():
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    x[4, 1], x[9, 0] = np.nan, np.inf
    with pytest.raises(DataError, match=r"2 feature vectors contain NaN or inf: row 4, row 9"):
        kmeans(x, 3)
    features = Features(array=x, paths=[f"/data/img{i}.png" for i in range(20)], labels=None, class_names=[])
    with pytest.raises(DataError, match=r"/data/img4\.png, /data/img9\.png"):
        kmeans(features, 3)


def test_an_empty_cluster_is_restarted_at_the_worst_served_point():
    from unsupervised.clustering import _Assigner, _lloyd

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2)), [[20.0, 20.0]]]).astype(np.float32)
    init = np.array([[0, 0], [5, 5], [-100, -100]], np.float32)  # the third centroid attracts no point
    centroids, labels, history = _lloyd(x, init, _Assigner(2, gpu=False), niter=10, tol=0.0, spherical=False)
    assert np.bincount(labels).tolist() == [50, 50, 1] and np.allclose(centroids[2], [20, 20])
    assert history[-1] < 3.0 < 400.0 < history[0]  # the lone far point first costs |(20,20)-(5,5)|^2 = 450


def test_too_few_distinct_vectors():
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    with pytest.raises(DataError, match="only 3 distinct"):
        kmeans(x, 4)
    assert sorted(np.bincount(kmeans(x, 3).labels)) == [10, 10, 10]


def test_bad_shapes_and_arguments():
    with pytest.raises(DataError, match="2-D"):
        kmeans(np.zeros(10, np.float32), 2)
    with pytest.raises(DataError, match="floating"):
        kmeans(np.zeros((10, 2), np.int64), 2)
    with pytest.raises(DataError, match="niter"):
        kmeans(np.random.default_rng(0).normal(size=(10, 2)), 2, niter=0)
