"""The :class:`Backbone` module every loader returns, its preprocessing, and the random-init control."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torchvision import transforms

from .registry import get_arch


@dataclass(frozen=True)
class Source:
    """Where a backbone's weights came from."""

    path: Path | None
    sha256: str | None
    container: str  # "torch-zip", "torch-legacy", "safetensors", or a description for random init

    def __str__(self) -> str:
        if self.path is None:
            return self.container
        return f"{self.path} (sha256 {self.sha256[:12]}..., {self.container})"


class ConvertRGB:
    """PIL image -> RGB (greyscale, palette and RGBA inputs become 3-channel)."""

    def __call__(self, image):
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ConvertRGB()"


def default_crop_pct(input_size: int) -> float:
    """ImageNet-scale models crop 224 out of 256 (0.875); small-image models use the whole resized image."""
    return 0.875 if input_size >= 128 else 1.0


def build_preprocess(
    input_size: int,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
    *,
    crop_pct: float | None = None,
    interpolation: str = "bilinear",
) -> transforms.Compose:
    """PIL image -> normalised tensor: Resize(shorter side) -> CenterCrop -> ToTensor [-> Normalize]."""
    crop_pct = default_crop_pct(input_size) if crop_pct is None else crop_pct
    resize = int(math.floor(input_size / crop_pct + 0.5))
    mode = transforms.InterpolationMode(interpolation)
    steps = [ConvertRGB(), transforms.Resize(resize, interpolation=mode), transforms.CenterCrop(input_size), transforms.ToTensor()]
    if mean is not None:
        steps.append(transforms.Normalize(mean, std))
    return transforms.Compose(steps)


class Backbone(nn.Module):
    """A feature extractor in eval mode: preprocessed images [N, 3, H, W] -> pooled features [N, D].

    ``model`` is the wrapped network; ``preprocess`` turns a PIL image into its input, with the
    normalisation the checkpoint was trained with (``mean``/``std`` None: raw [0, 1] input).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        arch: str,
        format: str,
        source: Source,
        feature_dim: int,
        mean: tuple[float, float, float] | None,
        std: tuple[float, float, float] | None,
        input_size: int,
        arch_kwargs: dict | None = None,
        crop_pct: float | None = None,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs or {})
        self.format = format
        self.source = source
        self.feature_dim = feature_dim
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.input_size = input_size
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.preprocess = build_preprocess(input_size, self.mean, self.std, crop_pct=crop_pct, interpolation=interpolation)
        self.eval()

    @property
    def agf_supported(self) -> bool:
        """Whether the AGF engine covers this architecture (False for ViTs and SimCLR v2 sk1)."""
        return get_arch(self.arch).agf_supported

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def extra_repr(self) -> str:
        norm = "[0, 1] input" if self.mean is None else f"mean={self.mean}, std={self.std}"
        return f"arch={self.arch}, format={self.format}, feature_dim={self.feature_dim}, input_size={self.input_size}, {norm}"


def random_like(backbone: Backbone, seed: int) -> Backbone:
    """The same architecture with seeded random initial weights: the negative control of a probe."""
    spec = get_arch(backbone.arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.create(**backbone.arch_kwargs)
    device = next(backbone.parameters()).device
    control = Backbone(
        model,
        arch=backbone.arch,
        format="random-init",
        source=Source(None, None, f"random init of {backbone.arch} (seed {seed})"),
        feature_dim=backbone.feature_dim,
        mean=backbone.mean,
        std=backbone.std,
        input_size=backbone.input_size,
        arch_kwargs=backbone.arch_kwargs,
        crop_pct=backbone.crop_pct,
        interpolation=backbone.interpolation,
    )
    return control.to(device)
