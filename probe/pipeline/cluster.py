"""Stage cluster: spherical k-means of one backbone's features into k pseudo-classes, how the
pseudo-classes agree with the folder labels when there are any, and the bootstrap replicates of
that agreement over the k-means seed and the images (docs/EVALUATION.md, "Uncertainty")."""

from __future__ import annotations

import numpy as np
import torch

from probe.evaluation.agreement import AgreementDraws, agreement_draws
from probe.evaluation.intervals import seed_sequence
from unsupervised import ClusterMetrics, Features, KMeansResult, PseudoClasses, cluster_metrics, kmeans

from .options import ProbeOptions
from .stages import StageClock, timed

#: Clusterings behind the agreement intervals: the run's own and the best-of-restarts runs from the next seeds.
AGREEMENT_SEEDS = 5
#: Seed key of the image resamples of every clustering of a run: the same for all backbones, so they are paired.
CLUSTERED_IMAGES = "clustered images"


def cluster(name: str, features: Features, options: ProbeOptions, *, clock: StageClock) -> KMeansResult:
    """k-means run ``options.restarts`` times from seeded starts, the lowest objective kept; on faiss's GPU
    index when the run is on CUDA and faiss has GPU support, else on the CPU."""
    gpu = None if torch.device(options.device).type == "cuda" else False
    with clock("cluster", name):
        return kmeans(features, options.k, seed=options.seed, nredo=options.restarts, spherical=True, gpu=gpu)


def label_agreement(pseudo: PseudoClasses, features: Features) -> ClusterMetrics | None:
    """NMI, ARI, accuracy, purity and each pseudo-class's majority label; None without folder labels."""
    if features.labels is None:
        return None
    return cluster_metrics(pseudo.labels, features.labels, class_names=features.class_names, k=pseudo.k)


def agreement_replicates(
    name: str, pseudo: PseudoClasses, features: Features, options: ProbeOptions
) -> AgreementDraws | None:
    """Replicates of the label agreement: ``pseudo``'s clustering and :data:`AGREEMENT_SEEDS` − 1 more (seeds
    ``options.seed + 1, + 2, …``, each the best of ``options.restarts``), scored on resamples of the images.

    None without folder labels. The extra clusterings are redone on every run (they are not saved), logged to
    run.log but not timed as a stage: a rerun that reuses the pseudo-classes runs no stage "cluster".
    """
    if features.labels is None:
        return None
    with timed(f"{name}: {AGREEMENT_SEEDS - 1} more clusterings (other seeds) for the agreement intervals"):
        others = [
            kmeans(features, options.k, seed=options.seed + j, nredo=options.restarts, spherical=True).labels
            for j in range(1, AGREEMENT_SEEDS)
        ]
    truth = np.asarray(features.labels, dtype=np.int64)
    return agreement_draws(
        [np.asarray(pseudo.labels), *others],
        truth,
        k=pseudo.k,
        labels=max(len(features.class_names or ()), int(truth.max()) + 1),
        images_seed=seed_sequence(options.seed, CLUSTERED_IMAGES, len(truth)),
        choice_seed=seed_sequence(options.seed, name, "k-means seeds"),
    )
