"""How images are prepared for a backbone: one config (size, crop, resize mode, normalisation) and its transform.

Architectures carry a default :class:`Preprocessing`; a checkpoint format may replace the
normalisation or the resize mode it was trained with (:meth:`Preprocessing.replace`). The named
normalisations below are the only place their statistics are written.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torchvision import transforms

from probe.errors import ProbeValueError

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` after ToTensor; ``mean`` and ``std`` both None: raw [0, 1] input.

    ``name`` is what listings show ("imagenet", "clip", ...); it takes no part in equality.
    """

    mean: RGB | None
    std: RGB | None
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ProbeValueError(
                f"mean and std must both be given or both be None, got mean={self.mean}, std={self.std}"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 3:
                    raise ProbeValueError(f"{name} must have 3 values (R, G, B), got {value}")
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.std is not None and min(self.std) <= 0:
            raise ProbeValueError(f"std must be positive, got {self.std}")

    @property
    def is_raw(self) -> bool:
        """True when the model takes RGB in [0, 1] without normalisation (SimCLR)."""
        return self.mean is None

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [0, 1] -> the model's input."""
        if self.is_raw:
            return images
        mean, std = self._stats(images)
        return (images - mean) / std

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """The model's input -> [N, 3, H, W] in [0, 1] (for display)."""
        if self.is_raw:
            return images
        mean, std = self._stats(images)
        return images * std + mean

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def as_tensor(values: RGB) -> torch.Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)

        if self.mean is None or self.std is None:
            raise RuntimeError("a raw [0, 1] normalisation has no mean and std (callers check is_raw first)")
        return as_tensor(self.mean), as_tensor(self.std)


IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "imagenet")
CIFAR = Normalization((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261), "cifar")
SWAV = Normalization(IMAGENET.mean, (0.228, 0.224, 0.225), "swav")  # SwAV's own code has 0.228 for red
CLIP = Normalization((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), "clip")  # OpenAI's
RAW = Normalization(None, None, "raw [0,1]")

INTERPOLATIONS = tuple(mode.value for mode in transforms.InterpolationMode)


class ConvertRGB:
    """PIL image -> RGB (greyscale, palette and RGBA inputs become 3-channel)."""

    def __call__(self, image):
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ConvertRGB()"


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone expects: a square ``input_size`` crop of an image resized with ``interpolation``, normalised.

    ``crop_pct`` is the fraction of the resized image kept by the centre crop; None: 0.875 at ImageNet
    scale (resize 256, crop 224) and 1.0 for small-image models (the whole resized image).
    """

    input_size: int = 224
    normalization: Normalization = IMAGENET
    crop_pct: float | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ProbeValueError(f"input_size must be a positive int, got {self.input_size!r}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ProbeValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise ProbeValueError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"
            )

    @property
    def mean(self) -> RGB | None:
        return self.normalization.mean

    @property
    def std(self) -> RGB | None:
        return self.normalization.std

    @property
    def resize_size(self) -> int:
        """Shorter side after the resize, before the centre crop."""
        crop_pct = self.crop_pct if self.crop_pct is not None else (0.875 if self.input_size >= 128 else 1.0)
        return int(math.floor(self.input_size / crop_pct + 0.5))

    def replace(self, **changes) -> Preprocessing:
        """A copy with some fields changed (e.g. a format's normalisation)."""
        return dataclasses.replace(self, **changes)

    def transform(self) -> transforms.Compose:
        """PIL image -> model input: RGB, Resize(shorter side), CenterCrop, ToTensor [, Normalize]."""
        mode = transforms.InterpolationMode(self.interpolation)
        steps = [
            ConvertRGB(),
            transforms.Resize(self.resize_size, interpolation=mode),
            transforms.CenterCrop(self.input_size),
            transforms.ToTensor(),
        ]
        if not self.normalization.is_raw:
            steps.append(transforms.Normalize(self.mean, self.std))
        return transforms.Compose(steps)
