"""Stages extract, cluster and head for one backbone: features -> k-means pseudo-classes -> linear head.

An earlier run's ``pseudo_classes.pt`` is reused when it was made from the same features (same
checkpoint, images and preprocessing: the feature-cache key), k and seed, so rerunning a report
skips clustering and training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import backbones
from probe.report import Clustering
from unsupervised import DataError, Features, ImageFolderData, ProbeModel, PseudoClasses, cluster_metrics
from unsupervised import extract_features, kmeans

from .images import with_transform
from .options import ProbeOptions
from .saved import STATE_FILE, discard_pending, pending, write_meta
from .stages import StageClock

log = logging.getLogger("probe.pipeline")


@dataclass
class Prepared:
    """One backbone with its features and pseudo-classes, ready to be explained."""

    name: str
    role: str
    backbone: backbones.Backbone
    data: ImageFolderData  # items follow this backbone's preprocessing
    features: Features
    rows: np.ndarray  # dataset index of each feature row
    pseudo: PseudoClasses
    model: ProbeModel
    metrics: dict | None  # unsupervised.cluster_metrics against the folder labels, None without labels

    @property
    def clusters(self) -> np.ndarray:
        return np.asarray(self.pseudo.labels, dtype=np.int64)

    def clustering(self) -> Clustering:
        m = self.metrics or {}
        return Clustering(k=self.pseudo.k, nmi=m.get("nmi"), ari=m.get("ari"), accuracy=m.get("hungarian_accuracy"),
                          purity=m.get("purity"))


def _reusable(path: Path, features: Features, backbone: backbones.Backbone, options: ProbeOptions) -> PseudoClasses | None:
    if not path.is_file() or features.key is None:
        return None
    try:
        state = PseudoClasses.load(path, backbone=backbone)
    except DataError as exc:
        log.info("not reusing %s: %s", path, exc)
        return None
    same = (state.feature_key == features.key and state.k == options.k and state.seed == options.seed
            and state.spherical and state.config.get("nredo") == options.restarts)
    if not same:
        log.info("not reusing %s: made from other features, k, seed or restarts", path)
        return None
    return state


def prepare(name: str, role: str, backbone: backbones.Backbone, data: ImageFolderData, options: ProbeOptions, *,
            state_dir: Path, cache_dir: Path | None, clock: StageClock,
            control_of: backbones.Backbone | None = None, control_seed: int | None = None) -> Prepared:
    """Features of ``data`` under ``backbone``, its pseudo-classes (fitted or reused) and their head."""
    view = with_transform(data, backbone.preprocess)
    with clock("extract", name):
        features = extract_features(backbone, view, batch_size=options.batch_size, num_workers=options.num_workers,
                                    cache_dir=cache_dir, device=options.device)
    if options.k > len(features):
        raise DataError(f"--k {options.k} is larger than the number of usable images ({len(features)}) in {data.root}")
    index = {path: i for i, path in enumerate(view.paths)}
    rows = np.array([index[p] for p in features.paths], dtype=np.int64)
    state_dir.mkdir(parents=True, exist_ok=True)
    discard_pending(state_dir)
    state_path = state_dir / STATE_FILE
    pseudo = _reusable(state_path, features, backbone, options)
    if pseudo is not None:
        log.info("%s: pseudo-classes reused from %s", name, state_path)
    else:
        with clock("cluster", name):
            result = kmeans(features, options.k, seed=options.seed, nredo=options.restarts, spherical=True)
        with clock("head", name):
            pseudo = PseudoClasses.from_clusters(features, result, backbone=backbone, nredo=options.restarts)
        pseudo.save(pending(state_path))  # moved into place with the report
    write_meta(state_dir, name=name, role=role, backbone=backbone, control_of=control_of,
               control_seed=control_seed, k=options.k, seed=options.seed)
    metrics = None
    if features.labels is not None:
        metrics = cluster_metrics(pseudo.labels, features.labels, class_names=features.class_names, k=pseudo.k)
    log.info("%s: k=%d, head held-out accuracy %s, %s", name, pseudo.k, pseudo.head_report.get("heldout_accuracy"),
             "no labels" if metrics is None else f"NMI {metrics['nmi']:.3f}, ARI {metrics['ari']:.3f}")
    model = pseudo.probe_model(backbone).to(options.device).eval()
    return Prepared(name, role, backbone, view, features, rows, pseudo, model, metrics)
