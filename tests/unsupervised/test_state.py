"""Pseudo-class state: fit, save atomically, load safely (weights_only), refuse another backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.unsup_helpers import StandInBackbone
from unsupervised import DataError, Features, ProbeModel, PseudoClasses, cluster_metrics


@pytest.fixture
def separable_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, size=(4, 128))
    array = (np.repeat(centres, 30, axis=0) + rng.normal(0, 0.5, size=(120, 128))).astype(np.float32)
    truth = np.repeat(np.arange(4), 30)
    return Features(
        array=array, paths=[f"/data/{i}.png" for i in range(120)], labels=truth, class_names=list("abcd"), key="k123"
    )


def test_fit_save_load_round_trip(backbone, separable_features, tmp_path):
    state = PseudoClasses.fit(separable_features, 4, backbone=backbone, seed=0)
    assert cluster_metrics(state.labels, separable_features.labels).ari == 1.0
    assert state.head_report["heldout_accuracy"] == 1.0 and state.feature_key == "k123"
    assert state.backbone["sha256"] == backbone.source.sha256 and state.backbone["arch"] == "resnet_small"
    path = tmp_path / "out" / "pseudo_classes.pt"
    state.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["pseudo_classes.pt"]  # no temporary left behind
    torch.load(path, weights_only=True)  # only safe types inside
    loaded = PseudoClasses.load(path, backbone=backbone)
    assert np.array_equal(loaded.labels, state.labels) and np.array_equal(loaded.centroids, state.centroids)
    assert loaded.paths == separable_features.paths and loaded.config == state.config
    assert loaded.head_report == state.head_report and loaded.objective == state.objective
    model = loaded.probe_model(backbone)
    assert isinstance(model, ProbeModel)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), state.head()(backbone(images)))


def test_other_backbone_is_refused(backbone, separable_features, tmp_path):
    state = PseudoClasses.fit(separable_features, 4, backbone=backbone, seed=0)
    state.save(tmp_path / "s.pt")
    other = StandInBackbone(seed=5)
    with pytest.raises(DataError, match="belong to backbone resnet_small with sha256"):
        PseudoClasses.load(tmp_path / "s.pt", backbone=other)
    with pytest.raises(DataError, match="sha256"):
        state.probe_model(other)


def test_bad_state_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PseudoClasses.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a pseudo-class state"):
        PseudoClasses.load(tmp_path / "junk.pt")
    torch.save({"version": 1, "k": 3}, tmp_path / "partial.pt")
    with pytest.raises(DataError, match="lacks labels"):
        PseudoClasses.load(tmp_path / "partial.pt")
