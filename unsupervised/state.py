"""The whole pseudo-class state in one file, so a report can be regenerated without re-clustering.

Saved with ``torch.save`` as tensors, lists, dicts, strings and numbers only, so it
loads with ``torch.load(weights_only=True)``; written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from probe.fileio import atomic_path

from .cache import backbone_sha256
from .clustering import KMeansResult, kmeans
from .errors import DataError
from .head import ProbeModel, train_head

STATE_VERSION = 1


def _backbone_identity(backbone: nn.Module) -> dict[str, Any]:
    return {
        "sha256": backbone_sha256(backbone),
        "arch": str(getattr(backbone, "arch", type(backbone).__name__)),
        "format": str(getattr(backbone, "format", "")),
        "feature_dim": int(getattr(backbone, "feature_dim", 0) or 0),
    }


@dataclass
class PseudoClasses:
    """Pseudo-classes of one backbone on one image set: clusters, centroids and the trained head."""

    k: int
    labels: np.ndarray
    centroids: np.ndarray
    head_weight: torch.Tensor
    head_bias: torch.Tensor
    objective: float
    seed: int
    spherical: bool
    backbone: dict[str, Any]
    paths: list[str] = field(default_factory=list)
    feature_key: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    head_report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        features: Any,
        k: int,
        *,
        backbone: nn.Module,
        seed: int = 0,
        spherical: bool = True,
        niter: int = 100,
        nredo: int = 1,
        gpu: bool | None = None,
        heldout: float = 0.2,
        weight_decay: float = 1e-3,
    ) -> PseudoClasses:
        """Cluster ``features`` (of ``backbone``) into ``k`` pseudo-classes and train their head."""
        result = kmeans(features, k, seed=seed, niter=niter, nredo=nredo, spherical=spherical, gpu=gpu)
        return cls.from_clusters(
            features, result, backbone=backbone, niter=niter, nredo=nredo, heldout=heldout, weight_decay=weight_decay
        )

    @classmethod
    def from_clusters(
        cls,
        features: Any,
        result: KMeansResult,
        *,
        backbone: nn.Module,
        niter: int = 100,
        nredo: int = 1,
        heldout: float = 0.2,
        weight_decay: float = 1e-3,
    ) -> PseudoClasses:
        """Train the head on an existing k-means ``result``: the second half of :meth:`fit`, which the
        pipeline times apart from the clustering."""
        k = int(result.centroids.shape[0])
        head, report = train_head(
            features, result.labels, seed=result.seed, num_classes=k, heldout=heldout, weight_decay=weight_decay
        )
        return cls(
            k=k,
            labels=result.labels,
            centroids=result.centroids,
            head_weight=head.weight.detach().clone(),
            head_bias=head.bias.detach().clone(),
            objective=result.objective,
            seed=result.seed,
            spherical=result.spherical,
            backbone=_backbone_identity(backbone),
            paths=list(getattr(features, "paths", None) or []),
            feature_key=getattr(features, "key", None),
            config={
                "niter": niter,
                "nredo": nredo,
                "n_iter": result.n_iter,
                "heldout": heldout,
                "weight_decay": weight_decay,
            },
            head_report=report.to_dict(),
        )

    def head(self) -> nn.Linear:
        """The pseudo-class head as a fresh ``nn.Linear(D, k)``."""
        linear = nn.Linear(self.head_weight.shape[1], self.k)
        with torch.no_grad():
            linear.weight.copy_(self.head_weight)
            linear.bias.copy_(self.head_bias)
        return linear.eval()

    def check_backbone(self, backbone: nn.Module) -> None:
        """Raise :class:`DataError` unless ``backbone`` is the one these pseudo-classes were made with."""
        sha = backbone_sha256(backbone)
        if sha != self.backbone["sha256"]:
            raise DataError(
                f"these pseudo-classes belong to backbone {self.backbone['arch']} with sha256 "
                f"{self.backbone['sha256']}, not to the given one ({sha})"
            )

    def probe_model(self, backbone: nn.Module) -> ProbeModel:
        """``ProbeModel(backbone, head)`` after checking that the backbone is the right one."""
        self.check_backbone(backbone)
        return ProbeModel(backbone, self.head())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "k": self.k,
            "labels": torch.from_numpy(np.asarray(self.labels, np.int64)),
            "centroids": torch.from_numpy(np.asarray(self.centroids, np.float32)),
            "head_weight": self.head_weight.detach().cpu().float(),
            "head_bias": self.head_bias.detach().cpu().float(),
            "objective": float(self.objective),
            "seed": int(self.seed),
            "spherical": bool(self.spherical),
            "backbone": dict(self.backbone),
            "paths": list(self.paths),
            "feature_key": self.feature_key,
            "config": dict(self.config),
            "head_report": dict(self.head_report),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the state to ``path`` atomically."""
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, backbone: nn.Module | None = None) -> PseudoClasses:
        """Read a saved state (safely: ``weights_only``); with ``backbone``, check it is the right one."""
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DataError(f"pseudo-class state {path} does not exist") from None
        except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
            raise DataError(f"{path} is not a pseudo-class state file: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise DataError(f"{path} is not a pseudo-class state file of version {STATE_VERSION}")
        fields = [name for name in cls.__dataclass_fields__]
        missing = [name for name in fields if name not in raw]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}")
        values = {name: raw[name] for name in fields}
        values["labels"] = raw["labels"].numpy()
        values["centroids"] = raw["centroids"].numpy()
        state = cls(**values)
        if backbone is not None:
            state.check_backbone(backbone)
        return state
