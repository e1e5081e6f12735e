"""How semantic a backbone's features are on held-out world images.

Two numbers: the NMI between the categories and faiss k-means pseudo-classes (k = number of
categories, L2-normalised features), which is what the probe's pseudo-classes see; and the
accuracy of a linear probe, which says whether the category is decodable at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from backbones.preprocessing import IMAGENET

from .world import WorldConfig, render_arrays

EVAL_SEED = 999_983  # the held-out world; training pools use the run's own seed


@dataclass
class EvalSet:
    """Held-out world images (uint8 NCHW) with their primary labels and the single-category mask."""

    images: torch.Tensor
    labels: np.ndarray
    single: np.ndarray
    k: int

    @classmethod
    def build(
        cls, cfg: WorldConfig, n: int = 2000, seed: int = EVAL_SEED, cache_dir: str | os.PathLike | None = None
    ) -> EvalSet:
        arrays = render_arrays(cfg, n, seed, cache_dir=cache_dir)
        images = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous()
        return cls(images, arrays["labels"], arrays["n_categories"] == 1, len(cfg.categories))


def preprocess(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    """[0, 1] images -> network input: ImageNet mean/std, or unchanged for [0, 1]-input formats (SimCLR)."""
    return IMAGENET.apply(x) if normalize else x


@torch.no_grad()
def extract(
    backbone: nn.Module,
    images: torch.Tensor,
    normalize: bool,
    device: str | torch.device = "cpu",
    batch_size: int = 250,
) -> np.ndarray:
    """Pooled features [N, D] (float32) of uint8 NCHW images, in eval mode; the mode is restored after."""
    was_training = backbone.training
    backbone.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device).float() / 255.0
        x = preprocess(x, normalize).contiguous(memory_format=torch.channels_last)
        out.append(backbone(x).float().cpu())
    backbone.train(was_training)
    return torch.cat(out).numpy()


def cluster_nmi(feats: np.ndarray, labels: np.ndarray, k: int, seed: int = 0, nredo: int = 5) -> float:
    """NMI between ``labels`` and faiss k-means (k clusters, nredo restarts) on L2-normalised features."""
    import faiss
    from sklearn.metrics import normalized_mutual_info_score

    x = np.ascontiguousarray(feats, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    km = faiss.Kmeans(x.shape[1], k, niter=50, nredo=nredo, seed=seed, spherical=True, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return float(normalized_mutual_info_score(labels, assign[:, 0]))


def probe_accuracy(feats: np.ndarray, labels: np.ndarray, train_fraction: float = 0.75) -> float:
    """Held-out accuracy of a logistic-regression probe on standardised features (first part trains)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    cut = int(len(labels) * train_fraction)
    scaler = StandardScaler().fit(feats[:cut])
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(feats[:cut]), labels[:cut])
    return float(clf.score(scaler.transform(feats[cut:]), labels[cut:]))


def evaluate(
    backbone: nn.Module, normalize: bool, data: EvalSet, device: str | torch.device = "cpu", seed: int = 0
) -> dict[str, float]:
    """NMI on all held-out images and on the single-category ones, and linear-probe accuracy."""
    feats = extract(backbone, data.images, normalize, device)
    return {
        "nmi": round(cluster_nmi(feats, data.labels, data.k, seed), 4),
        "nmi_single": round(cluster_nmi(feats[data.single], data.labels[data.single], data.k, seed), 4),
        "probe_acc": round(probe_accuracy(feats, data.labels), 4),
    }
