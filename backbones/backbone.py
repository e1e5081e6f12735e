"""The :class:`Backbone` module every loader returns, and the random-init control."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from probe.devices import model_device

from .preprocessing import RGB, Preprocessing
from .registry import get_arch


@dataclass(frozen=True)
class Source:
    """Where a backbone's weights came from."""

    path: Path | None
    sha256: str | None
    container: str  # "torch-zip", "torch-legacy", "safetensors", or a description for random init

    def __str__(self) -> str:
        if self.path is None or self.sha256 is None:  # random init: neither a file nor a hash
            return self.container
        return f"{self.path} (sha256 {self.sha256[:12]}..., {self.container})"


class Backbone(nn.Module):
    """A feature extractor in eval mode: preprocessed images [N, 3, H, W] -> pooled features [N, D].

    ``model`` is the wrapped network; ``preprocessing`` is what the checkpoint was trained with, and
    ``preprocess`` its transform from a PIL image to the model's input.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        arch: str,
        format: str,
        source: Source,
        feature_dim: int,
        preprocessing: Preprocessing,
        arch_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs or {})
        self.format = format
        self.source = source
        self.feature_dim = feature_dim
        self.preprocessing = preprocessing
        self.preprocess = preprocessing.transform()
        self.eval()

    @property
    def mean(self) -> RGB | None:
        """Normalisation mean (None: raw [0, 1] input, e.g. SimCLR)."""
        return self.preprocessing.mean

    @property
    def std(self) -> RGB | None:
        return self.preprocessing.std

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def extra_repr(self) -> str:
        norm = "[0, 1] input" if self.mean is None else f"mean={self.mean}, std={self.std}"
        return (
            f"arch={self.arch}, format={self.format}, feature_dim={self.feature_dim}, "
            f"input_size={self.input_size}, {norm}"
        )


def random_like(backbone: Backbone, seed: int) -> Backbone:
    """The same architecture with seeded random initial weights: the negative control of a probe."""
    spec = get_arch(backbone.arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.create(**backbone.arch_kwargs)
    device = model_device(backbone)
    control = Backbone(
        model,
        arch=backbone.arch,
        format="random-init",
        source=Source(None, None, f"random init of {backbone.arch} (seed {seed})"),
        feature_dim=backbone.feature_dim,
        preprocessing=backbone.preprocessing,
        arch_kwargs=backbone.arch_kwargs,
    )
    return control.to(device)
