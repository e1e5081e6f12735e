"""The whole unsupervised path on a real ``backbones.load`` Backbone (not the stand-in)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import backbones
from tests.support.unsup_helpers import make_folder
from unsupervised import ImageFolderData, PseudoClasses, cluster_metrics, extract_features


def test_loaded_checkpoint_through_extraction_clustering_head_and_masks(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state = backbones.create("resnet_small").state_dict()
    checkpoint = tmp_path / "resnet_small.pth"
    torch.save(state, checkpoint)
    backbone = backbones.load(checkpoint, arch="resnet_small")
    assert backbone.source.sha256 and backbone.feature_dim == 128

    images = make_folder(tmp_path / "images", {"a": 6, "b": 6})
    masks = tmp_path / "masks"
    for rel in ("a/img000", "b/img003"):
        (masks / rel).parent.mkdir(parents=True, exist_ok=True)
        size = Image.open(images / f"{rel}.png").size
        Image.new("L", size, 255).save(masks / f"{rel}.png")
    data = ImageFolderData(images, masks=masks)
    assert data.mask(0, backbone.preprocess).shape == (backbone.input_size, backbone.input_size)
    assert data.mask(1, backbone.preprocess) is None and len(data.mask_issues) == 10

    features = extract_features(backbone, data, batch_size=5, cache_dir=tmp_path / "cache")
    direct = backbone(torch.stack([backbone.preprocess(data.load_image(i)) for i in range(len(data))]))
    np.testing.assert_allclose(np.asarray(features), direct.detach().numpy(), rtol=1e-4, atol=1e-5)

    pseudo = PseudoClasses.fit(features, 2, backbone=backbone, seed=0)
    pseudo.save(tmp_path / "pseudo.pt")
    model = PseudoClasses.load(tmp_path / "pseudo.pt", backbone=backbones.load(checkpoint)).probe_model(backbone)
    with torch.no_grad():
        assert model(torch.randn(2, 3, backbone.input_size, backbone.input_size)).shape == (2, 2)
    assert model.preprocess is backbone.preprocess
    metrics = cluster_metrics(pseudo.labels, features.labels, class_names=features.class_names)
    assert sum(metrics.sizes) == 12 and 0.0 <= metrics.nmi <= 1.0


def test_random_init_controls_get_their_own_cache_entries(tmp_path):
    torch.save(backbones.create("resnet_small").state_dict(), tmp_path / "trained.pth")
    trained = backbones.load(tmp_path / "trained.pth", arch="resnet_small")
    data = ImageFolderData(make_folder(tmp_path / "images", None, flat_count=3))
    cache = tmp_path / "cache"
    keys = [
        extract_features(b, data, cache_dir=cache).key
        for b in (
            trained,
            backbones.random_like(trained, 0),
            backbones.random_like(trained, 1),
            backbones.random_like(trained, 0),
        )
    ]
    assert keys[0] != keys[1] != keys[2] and keys[3] == keys[1]  # no source file: keyed by the weights
