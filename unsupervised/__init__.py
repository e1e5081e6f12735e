"""Features to pseudo-classes: extraction with a resumable cache, faiss k-means, a linear pseudo-class head.

Typical use::

    data = ImageFolderData("images/", masks="masks/")
    features = extract_features(backbone, data, cache_dir="cache/")
    pseudo = PseudoClasses.fit(features, k=10, backbone=backbone)
    model = pseudo.probe_model(backbone)          # what probe.explain explains
    cluster_metrics(pseudo.labels, features.labels)
"""

from .clustering import KMeansResult, kmeans
from .data import ImageFolderData
from .errors import DataError
from .features import Features, extract_features
from .head import HeadReport, ProbeModel, train_head
from .metrics import ClusterLabel, ClusterMetrics, cluster_metrics
from .state import PseudoClasses

__all__ = [
    "ClusterLabel",
    "ClusterMetrics",
    "DataError",
    "Features",
    "HeadReport",
    "ImageFolderData",
    "KMeansResult",
    "ProbeModel",
    "PseudoClasses",
    "cluster_metrics",
    "extract_features",
    "kmeans",
    "train_head",
]
