"""How good a clustering is: agreement with known labels, or internal quality without them.

:func:`cluster_metrics` returns a :class:`ClusterMetrics`; its ``to_json()`` holds plain
JSON-ready values (ints, floats, lists, dicts, None for "not available"), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from .clustering import as_matrix, kmeans
from .errors import DataError


@dataclass(frozen=True)
class ClusterLabel:
    """One non-empty cluster against the true labels: its size, majority label and purity."""

    cluster: int
    size: int
    majority: Any  # the majority truth value (an int or a string)
    purity: float
    majority_name: str | None = None  # the class name of an int majority, when names were given

    @property
    def label(self) -> str:
        """The majority label as shown to people: its class name when known."""
        return self.majority_name if self.majority_name is not None else str(self.majority)

    def to_json(self) -> dict[str, Any]:
        out = {"cluster": self.cluster, "size": self.size, "majority": self.majority, "purity": self.purity}
        if self.majority_name is not None:
            out["majority_name"] = self.majority_name
        return out


@dataclass(frozen=True)
class Stability:
    """ARI between a clustering and k-means reruns with other seeds."""

    seeds: list[int]
    ari: list[float]
    mean_ari: float
    min_ari: float


@dataclass(frozen=True)
class ClusterMetrics:
    """Metrics of one clustering; the label-agreement fields are None without truth labels, stability and
    silhouette None without features (see :func:`cluster_metrics`)."""

    n: int
    k: int
    sizes: list[int]
    empty_clusters: int
    nmi: float | None = None
    ari: float | None = None
    hungarian_accuracy: float | None = None
    purity: float | None = None
    num_classes: int | None = None
    per_cluster: list[ClusterLabel] = field(default_factory=list)
    stability: Stability | None = None
    silhouette: float | None = None

    @property
    def labelled(self) -> bool:
        """True when the metrics were measured against truth labels."""
        return self.nmi is not None

    def cluster(self, cluster: int) -> ClusterLabel | None:
        """The label agreement of cluster id ``cluster`` (None when it is empty or there were no labels)."""
        return next((entry for entry in self.per_cluster if entry.cluster == cluster), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; keys that were not measured are left out."""
        out: dict[str, Any] = {
            "n": self.n,
            "k": self.k,
            "sizes": list(self.sizes),
            "empty_clusters": self.empty_clusters,
        }
        if self.labelled:
            out.update(
                nmi=self.nmi,
                ari=self.ari,
                hungarian_accuracy=self.hungarian_accuracy,
                purity=self.purity,
                num_classes=self.num_classes,
                per_cluster=[entry.to_json() for entry in self.per_cluster],
            )
        if self.stability is not None:
            out.update(stability=vars(self.stability).copy(), silhouette=self.silhouette)
        return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def contingency(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``[cluster, class]`` with the sorted cluster ids and class values they index."""
    clusters, cluster_idx = np.unique(labels, return_inverse=True)
    classes, class_idx = np.unique(truth, return_inverse=True)
    table = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(table, (cluster_idx, class_idx), 1)
    return table, clusters, classes


def hungarian_accuracy(table: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (works for k != #classes)."""
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(table: np.ndarray) -> float:
    """Share of points whose cluster's majority class is their own class."""
    return float(table.max(axis=1).sum() / table.sum())


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _supervised(labels: np.ndarray, truth: np.ndarray, class_names: Sequence[str] | None) -> dict[str, Any]:
    """The label-agreement fields of :class:`ClusterMetrics`."""
    table, clusters, classes = contingency(labels, truth)
    per_cluster = []
    for row, cluster in zip(table, clusters):
        majority = _python(classes[int(row.argmax())])
        majority_name = None
        if class_names is not None and isinstance(majority, int) and 0 <= majority < len(class_names):
            majority_name = class_names[majority]
        per_cluster.append(
            ClusterLabel(
                cluster=int(cluster),
                size=int(row.sum()),
                majority=majority,
                purity=float(row.max() / row.sum()),
                majority_name=majority_name,
            )
        )
    return {
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "ari": float(adjusted_rand_score(truth, labels)),
        "hungarian_accuracy": hungarian_accuracy(table),
        "purity": purity(table),
        "num_classes": int(len(classes)),
        "per_cluster": per_cluster,
    }


def stability(features: Any, labels: np.ndarray, k: int, *, seeds: Sequence[int], spherical: bool) -> Stability:
    """ARI between ``labels`` and k-means reruns with other seeds (1 = the same partition every time)."""
    scores = [adjusted_rand_score(labels, kmeans(features, k, seed=s, spherical=spherical).labels) for s in seeds]
    return Stability(
        seeds=[int(s) for s in seeds],
        ari=[float(s) for s in scores],
        mean_ari=float(np.mean(scores)),
        min_ari=float(np.min(scores)),
    )


def silhouette(features: Any, labels: np.ndarray, *, sample: int, seed: int, spherical: bool) -> float | None:
    """Silhouette (cosine when ``spherical``) on a seeded sample; None when fewer than 2 clusters."""
    x, _ = as_matrix(features)
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(x):
        return None
    metric = "cosine" if spherical else "euclidean"
    return _finite(silhouette_score(x, labels, metric=metric, sample_size=min(sample, len(x)), random_state=seed))


def cluster_metrics(
    labels: Any,
    truth: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    features: Any = None,
    k: int | None = None,
    spherical: bool = False,
    stability_seeds: Sequence[int] | None = None,
    silhouette_sample: int = 5000,
    seed: int = 0,
) -> ClusterMetrics:
    """Metrics of a clustering (``.to_json()`` for a JSON-ready dict).

    Always: ``k``, ``sizes`` (per cluster id, empty ones included). With ``truth``: NMI,
    ARI, Hungarian-matched accuracy, purity and per-cluster majority label and purity.
    With ``features``: stability (ARI against k-means reruns with ``stability_seeds``,
    default ``seed + 1 .. seed + 3``, where ``seed`` is the one the labels came from) and
    silhouette on a sample of ``silhouette_sample`` points drawn with ``seed``.
    """
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise DataError("no cluster labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError("cluster labels must be integers >= 0")
    k = int(k) if k is not None else int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    result: dict[str, Any] = {
        "n": int(labels.size),
        "k": k,
        "sizes": sizes.tolist(),
        "empty_clusters": int((sizes == 0).sum()),
    }
    if truth is not None:
        truth = np.asarray(truth).ravel()
        if truth.shape != labels.shape:
            raise DataError(f"{truth.size} truth labels for {labels.size} cluster labels")
        result.update(_supervised(labels, truth, class_names))
    if features is not None:
        if len(features) != labels.size:
            raise DataError(f"{len(features)} feature vectors for {labels.size} cluster labels")
        seeds = stability_seeds if stability_seeds is not None else [seed + 1, seed + 2, seed + 3]
        result["stability"] = stability(features, labels, k, seeds=seeds, spherical=spherical)
        result["silhouette"] = silhouette(features, labels, sample=silhouette_sample, seed=seed, spherical=spherical)
    return ClusterMetrics(**result)
