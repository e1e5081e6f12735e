"""One backbone through stages extract, cluster and head: the pseudo-class model that the explain
and evaluate stages then work on.

An earlier run's ``pseudo_classes.pt`` is reused when it was made from the same features (same
checkpoint, images and preprocessing: the feature-cache key), k, seed and restarts, so rerunning
a report skips clustering and training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import backbones
from probe.evaluation.agreement import AgreementDraws
from probe.evaluation.intervals import Estimate, estimate
from probe.report import Clustering
from unsupervised import ClusterMetrics, Features, ImageFolderData, ProbeModel, PseudoClasses
from unsupervised.distributed import Group

from .cluster import agreement_replicates, cluster, label_agreement
from .extract import extract
from .head import fit_head
from .options import ProbeOptions
from .saved import STATE_FILE, discard_pending, pending, reusable_pseudo_classes, write_meta
from .stages import StageClock

log = logging.getLogger("probe.pipeline")


@dataclass
class Prepared:
    """One backbone with its features and pseudo-classes, ready to be explained."""

    name: str
    role: str  # "probe", "positive control" or "control"
    backbone: backbones.Backbone
    data: ImageFolderData  # items follow this backbone's preprocessing
    features: Features
    rows: np.ndarray  # dataset index of each feature row
    pseudo: PseudoClasses
    model: ProbeModel
    metrics: ClusterMetrics | None  # agreement with the folder labels, None without labels
    agreement: AgreementDraws | None = None  # its bootstrap replicates (k-means seeds and images)

    @property
    def clusters(self) -> np.ndarray:
        return np.asarray(self.pseudo.labels, dtype=np.int64)

    def clustering(self) -> Clustering:
        """The report's clustering figures with their intervals (None where there are no labels)."""
        m, d = self.metrics, self.agreement
        if m is None:
            return Clustering(k=self.pseudo.k)
        return Clustering(
            k=self.pseudo.k,
            nmi=estimate(m.nmi, d.nmi if d else None),
            ari=estimate(m.ari, d.ari if d else None),
            accuracy=estimate(m.hungarian_accuracy, d.accuracy if d else None),
            purity=estimate(m.purity, d.purity if d else None),
        )

    def majority_label(self, pseudo_class: int) -> str | None:
        """The folder label most of ``pseudo_class``'s images carry (None without labels or images)."""
        entry = self.metrics.cluster(pseudo_class) if self.metrics is not None else None
        return entry.label if entry is not None else None

    def purity(self, pseudo_class: int) -> Estimate | None:
        """The share of ``pseudo_class``'s images carrying its majority label, with its interval over the images."""
        entry = self.metrics.cluster(pseudo_class) if self.metrics is not None else None
        if entry is None:
            return None
        draws = self.agreement.class_purity[:, pseudo_class] if self.agreement is not None else None
        return estimate(entry.purity, draws)


def prepare(
    name: str,
    role: str,
    backbone: backbones.Backbone,
    data: ImageFolderData,
    options: ProbeOptions,
    *,
    state_dir: Path,
    cache_dir: Path | None,
    clock: StageClock,
    group: Group | None = None,
    control_of: backbones.Backbone | None = None,
    control_seed: int | None = None,
) -> Prepared:
    """Features of ``data`` under ``backbone``, its pseudo-classes (fitted or reused) and their head.

    The state is saved as pending in ``state_dir`` (moved into place with the report). Under torchrun
    (``group``) every rank extracts its share; rank 0 clusters (the extra clusterings of the intervals
    too), trains the head, writes the state and sends the pseudo-classes to the other ranks.
    """
    group = group or Group()
    extracted = extract(name, backbone, data, options, cache_dir=cache_dir, clock=clock)
    features = extracted.features
    pseudo = None
    if group.is_main:
        state_dir.mkdir(parents=True, exist_ok=True)
        discard_pending(state_dir)
        state_path = state_dir / STATE_FILE
        pseudo = reusable_pseudo_classes(state_path, features, backbone, options)
        if pseudo is not None:
            log.info("%s: pseudo-classes reused from %s", name, state_path)
        else:
            clusters = cluster(name, features, options, clock=clock)
            pseudo = fit_head(name, features, clusters, backbone, options, clock=clock)
            pseudo.save(pending(state_path))  # moved into place with the report
        write_meta(
            state_dir,
            name=name,
            role=role,
            backbone=backbone,
            control_of=control_of,
            control_seed=control_seed,
            k=options.k,
            seed=options.seed,
        )
    pseudo = group.broadcast(pseudo)
    metrics = label_agreement(pseudo, features)
    # the extra clusterings behind the intervals: rank 0's, like the clustering itself
    agreement = agreement_replicates(name, pseudo, features, options) if metrics is not None and group.is_main else None
    agreement = group.broadcast(agreement)
    log.info(
        "%s: k=%d, head held-out accuracy %s, %s",
        name,
        pseudo.k,
        pseudo.head_report.get("heldout_accuracy"),
        "no labels" if metrics is None else f"NMI {metrics.nmi:.3f}, ARI {metrics.ari:.3f}",
    )
    model = pseudo.probe_model(backbone).to(options.device, memory_format=torch.channels_last).eval()
    return Prepared(name, role, backbone, extracted.data, features, extracted.rows, pseudo, model, metrics, agreement)
