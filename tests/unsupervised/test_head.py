"""Pseudo-class head: accurate on separable clusters, standardisation folded into one Linear, ProbeModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import make_blobs

from unsupervised import DataError, HeadReport, ProbeModel, train_head
from unsupervised.head import fold_standardisation, stratified_split


def _separable(n=900, d=24, k=6, seed=0):
    x, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=1.0, random_state=seed)
    scales = np.logspace(-2, 3, d)  # wildly different feature scales: standardisation matters
    return (x * scales + 50.0).astype(np.float32), y


def test_head_predicts_separable_clusters():
    x, y = _separable()
    head, report = train_head(x, y, seed=0)
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (24, 6)
    assert isinstance(report, HeadReport)
    assert report.train_accuracy == 1.0 and report.heldout_accuracy == 1.0
    assert report.n_train + report.n_heldout == 900 and report.n_heldout == 180
    logits = head(torch.from_numpy(x))
    assert (logits.argmax(1).numpy() == y).mean() == 1.0  # the returned head works on raw features


def test_heldout_accuracy_is_measured_on_unseen_points():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 200)).astype(np.float32)  # many dims: the training split can be memorised
    y = rng.integers(0, 3, size=600)  # labels unrelated to the features
    _, report = train_head(x, y, seed=0, weight_decay=1e-4)
    assert report.train_accuracy > 0.7 and report.heldout_accuracy < 0.5


def test_fold_standardisation_equals_the_standardised_path():
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(5, 7, generator=gen), torch.randn(5, generator=gen)
    mean, std = torch.randn(7, generator=gen) * 10, torch.rand(7, generator=gen) * 5 + 0.01
    x = torch.randn(40, 7, generator=gen) * std + mean
    folded = fold_standardisation(weight, bias, mean, std)
    torch.testing.assert_close(folded(x), ((x - mean) / std) @ weight.T + bias, rtol=1e-4, atol=1e-4)


def test_stratified_split_holds_out_each_class():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 1)
    train, heldout = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[heldout], minlength=3).tolist() == [10, 2, 0]
    assert sorted(np.concatenate([train, heldout]).tolist()) == list(range(61))
    assert np.array_equal(stratified_split(labels, 0.2, seed=0)[1], heldout)


def test_bad_labels():
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(DataError, match="9 labels for 10"):
        train_head(x, np.zeros(9, int))
    with pytest.raises(DataError, match=">= 0"):
        train_head(x, -np.ones(10, int))
    with pytest.raises(DataError, match="at least 2 classes"):
        train_head(x, np.zeros(10, int))


def test_probe_model_is_backbone_then_head(backbone):
    head = nn.Linear(128, 5)
    model = ProbeModel(backbone, head)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = model(images)
        assert logits.shape == (3, 5)
        torch.testing.assert_close(logits, head(backbone(images)))
    assert model.backbone is backbone and model.head is head and model.num_classes == 5
    assert model.preprocess is backbone.preprocess and model.input_size == 64 and not model.training
    traced = torch.fx.symbolic_trace(model)  # the attribution engine traces models with torch.fx
    with torch.no_grad():
        torch.testing.assert_close(traced(images), logits)
    with pytest.raises(DataError, match="head expects 64 features, backbone gives 128"):
        ProbeModel(backbone, nn.Linear(64, 5))
