"""Cluster metrics on hand-computed cases; typed results with a JSON-ready form."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unsupervised import DataError, cluster_metrics
from unsupervised.metrics import contingency, hungarian_accuracy, purity


def test_a_permuted_labelling_is_perfect():
    truth = np.array([0, 0, 1, 1, 2, 2, 2])
    labels = np.array([2, 2, 0, 0, 1, 1, 1])
    m = cluster_metrics(labels, truth)
    assert m.nmi == pytest.approx(1.0) and m.ari == pytest.approx(1.0)
    assert m.hungarian_accuracy == 1.0 and m.purity == 1.0
    assert m.sizes == [2, 3, 2] and m.k == 3 and m.num_classes == 3


def test_known_contingency_table():
    # clusters x classes:  c0 [5, 1, 0]   c1 [4, 0, 0]   c2 [0, 3, 2]
    labels = np.array([0] * 6 + [1] * 4 + [2] * 5)
    truth = np.array([0] * 5 + [1] + [0] * 4 + [1] * 3 + [2] * 2)
    table, _, _ = contingency(labels, truth)
    assert table.tolist() == [[5, 1, 0], [4, 0, 0], [0, 3, 2]]
    # best one-to-one matching: c0->0 (5), c2->1 (3), c1->2 (0) = 8 of 15;  purity: (5 + 4 + 3) / 15
    assert hungarian_accuracy(table) == pytest.approx(8 / 15)
    assert purity(table) == pytest.approx(12 / 15)
    m = cluster_metrics(labels, truth, class_names=["cat", "dog", "eel"])
    assert m.hungarian_accuracy == pytest.approx(8 / 15) and m.purity == pytest.approx(12 / 15)
    assert m.per_cluster[2].to_json() == {"cluster": 2, "size": 5, "majority": 1, "purity": 0.6, "majority_name": "dog"}
    assert m.cluster(2).label == "dog" and m.cluster(5) is None


def test_more_clusters_than_classes():
    labels = np.array([0, 1, 2, 3])
    truth = np.array(["a", "a", "b", "b"])
    m = cluster_metrics(labels, truth)
    assert m.hungarian_accuracy == 0.5 and m.purity == 1.0
    assert m.per_cluster[3].majority == "b" and m.per_cluster[3].label == "b"
    assert "majority_name" not in m.per_cluster[3].to_json()


def test_without_truth_sizes_stability_and_silhouette():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(c, 0.1, size=(40, 5)) for c in (0, 5, 10)]).astype(np.float32)
    labels = np.repeat([0, 1, 2], 40)
    m = cluster_metrics(labels, features=features, k=4)
    assert m.sizes == [40, 40, 40, 0] and m.empty_clusters == 1 and m.nmi is None and "nmi" not in m.to_json()
    assert m.stability.seeds == [1, 2, 3]
    assert m.silhouette > 0.9
    noise = rng.normal(size=(120, 5)).astype(np.float32)
    shuffled = cluster_metrics(rng.permutation(labels), features=noise, k=3)
    assert shuffled.silhouette < 0.1
    json.dumps(m.to_json(), allow_nan=False)
    json.dumps(cluster_metrics(labels, labels, features=features).to_json(), allow_nan=False)


def test_stability_is_low_for_unstable_clusterings():
    rng = np.random.default_rng(1)
    noise = rng.uniform(size=(400, 6)).astype(np.float32)
    from unsupervised import kmeans

    labels = kmeans(noise, 12, seed=0).labels
    stable = rng.normal(size=(400, 6)).astype(np.float32) * 0.05 + np.repeat(np.eye(6)[:4] * 10, 100, axis=0)
    assert cluster_metrics(labels, features=noise).stability.mean_ari < 0.9
    stable_labels = kmeans(stable, 4, seed=0).labels
    assert cluster_metrics(stable_labels, features=stable).stability.min_ari == 1.0


def test_bad_inputs():
    with pytest.raises(DataError, match="integers >= 0"):
        cluster_metrics(np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="3 truth labels for 2"):
        cluster_metrics(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(DataError, match="no cluster labels"):
        cluster_metrics(np.array([], dtype=int))
