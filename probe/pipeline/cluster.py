"""Stage cluster: spherical k-means of one backbone's features into k pseudo-classes, and how the
pseudo-classes agree with the folder labels when there are any."""

from __future__ import annotations

from unsupervised import ClusterMetrics, Features, KMeansResult, PseudoClasses, cluster_metrics, kmeans

from .options import ProbeOptions
from .stages import StageClock


def cluster(name: str, features: Features, options: ProbeOptions, *, clock: StageClock) -> KMeansResult:
    """k-means run ``options.restarts`` times from seeded starts, the lowest objective kept; on faiss's GPU
    index when the run is on CUDA and faiss has GPU support, else on the CPU."""
    gpu = None if options.device.type == "cuda" else False
    with clock("cluster", name):
        return kmeans(features, options.k, seed=options.seed, nredo=options.restarts, spherical=True, gpu=gpu)


def label_agreement(pseudo: PseudoClasses, features: Features) -> ClusterMetrics | None:
    """NMI, ARI, accuracy, purity and each pseudo-class's majority label; None without folder labels."""
    if features.labels is None:
        return None
    return cluster_metrics(pseudo.labels, features.labels, class_names=features.class_names, k=pseudo.k)
