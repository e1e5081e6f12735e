"""Positive and negative perturbation: does removing the pixels a map calls relevant kill the prediction?

The protocol follows the AGF paper's published evaluation: for each fraction s of the
pixels, the first ⌊H·W·s⌋ pixels in removal order are set to black (0 in every channel of
the *unnormalised* image), the image is normalised again and classified, and we record
whether the class of interest is still the top-1 prediction ("survival", a hit).

- positive perturbation removes the most relevant pixels first (descending relevance);
  a faithful map makes the prediction die quickly, so a LOWER area under the curve is better;
- negative perturbation removes the least relevant pixels first (ascending relevance). For
  a signed map this is the same order as "most negative first" in the published code; a
  faithful map keeps the prediction alive, so a HIGHER area is better.

Setting an unnormalised pixel to 0 is the same as writing ``(0 - mean) / std`` in each
channel of the normalised input, which is what we do (no round trip through [0, 1]).

``removal="blur"`` replaces the pixels with a Gaussian blur of the same image instead of black
(sigma :data:`BLUR_SIGMA` of the image side): scattered black pixels are new edges that break a
small model's prediction whatever the map says (docs/EVALUATION.md, "The faithfulness puzzle").
Black stays the default, the published protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones.preprocessing import Normalization
from probe.attribution import inference_mode
from probe.devices import model_device, to_device
from probe.errors import ProbeValueError

from ._tensors import check_maps, check_targets, progress

#: Fractions of pixels removed: the clean image plus 10 %, 20 %, …, 90 % (the published steps).
STEPS: tuple[float, ...] = tuple(i / 10 for i in range(10))
MODES = ("positive", "negative")
#: What removed pixels become: black (the published protocol) or a Gaussian blur of the image.
REMOVALS = ("black", "blur")
#: Standard deviation of the blur, as a fraction of the image side (3 px at 64 px, 10.5 px at 224 px).
BLUR_SIGMA = 3 / 64


@dataclass(frozen=True)
class PerturbationCurve:
    """Survival of the class of interest while pixels are removed in one order.

    ``hits[n, j]`` is True when image n is still classified as its target after removing
    the fraction ``fractions[j]`` of its pixels.
    """

    mode: str
    fractions: tuple[float, ...]
    hits: torch.Tensor  # [N, S] bool, CPU

    @property
    def survival(self) -> torch.Tensor:
        """Fraction of images still classified as their target, per step ``[S]``."""
        return self.hits.double().mean(dim=0)

    @property
    def auc(self) -> float:
        """Normalised area under the survival curve (see :func:`perturbation_auc`)."""
        return perturbation_auc(self.fractions, self.survival)

    def per_image_auc(self) -> torch.Tensor:
        """Normalised area under each image's own 0/1 survival curve ``[N]`` (their mean is :attr:`auc`)."""
        return torch.tensor([perturbation_auc(self.fractions, row) for row in self.hits.double()], dtype=torch.float64)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Positive and negative perturbation curves of one set of maps."""

    positive: PerturbationCurve
    negative: PerturbationCurve

    @property
    def gap(self) -> float:
        """Negative AUC minus positive AUC: large when the map ranks pixels the way the model uses them."""
        return self.negative.auc - self.positive.auc


def perturbation_auc(fractions: Sequence[float], survival: Sequence[float] | torch.Tensor) -> float:
    """Area under a survival curve by the trapezoid rule, divided by the width of the fraction range.

    With the default :data:`STEPS` this is the trapezoid over s = 0, 0.1, …, 0.9 (clean point
    included) divided by 0.9, so a curve that stays at 1 scores 1 and one at 0 scores 0.
    """
    x = torch.as_tensor(list(fractions), dtype=torch.float64)
    y = torch.as_tensor(survival, dtype=torch.float64).reshape(-1)
    if x.numel() < 2 or x.numel() != y.numel():
        raise ProbeValueError(
            f"perturbation_auc needs >= 2 matching points, got {x.numel()} fractions, {y.numel()} values"
        )
    width = float(x[-1] - x[0])
    if width <= 0:
        raise ProbeValueError("perturbation_auc: fractions must increase")
    return float(torch.trapezoid(y, x)) / width


def removal_ranks(maps: torch.Tensor, mode: str) -> torch.Tensor:
    """Position of every pixel in the removal order, ``[N, H·W]`` (0 = removed first).

    ``positive``: descending relevance; ``negative``: ascending relevance. Ties keep row-major
    pixel order, so the result is deterministic.
    """
    maps = check_maps(maps)
    if mode not in MODES:
        raise ProbeValueError(f"unknown perturbation mode {mode!r}; valid: {', '.join(MODES)}")
    flat = maps.reshape(maps.shape[0], -1)
    order = torch.sort(flat, dim=1, descending=(mode == "positive"), stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def pixels_removed(fraction: float, num_pixels: int) -> int:
    """⌊num_pixels · fraction⌋, robust to float rounding (0.3 · 100 is 30, not 29)."""
    if not 0.0 <= fraction <= 1.0:
        raise ProbeValueError(f"perturbation fraction must be in [0, 1], got {fraction}")
    return int(math.floor(num_pixels * fraction + 1e-9))


def removal_masks(maps: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """Bool ``[N, H, W]``: the pixels removed at ``fraction`` in ``mode`` order."""
    ranks = removal_ranks(maps, mode)
    k = pixels_removed(fraction, ranks.shape[1])
    return (ranks < k).reshape(maps.shape)


def _black(normalization: Normalization, channels: int, like: torch.Tensor) -> torch.Tensor:
    """Value of an unnormalised-black pixel in the normalised input space, ``[1, C, 1, 1]``."""
    if normalization.is_raw:
        return torch.zeros(1, channels, 1, 1, dtype=like.dtype, device=like.device)
    if channels != 3:
        raise ProbeValueError(f"normalization {normalization.name!r} has 3 channels (R, G, B), the images {channels}")
    black = torch.zeros(1, channels, 1, 1, dtype=like.dtype, device=like.device)
    return normalization.apply(black)


def blurred(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Each channel of ``images [N, C, H, W]`` convolved with a Gaussian (mirrored borders), the blur removal value.

    ``sigma`` in pixels (default :data:`BLUR_SIGMA` of the image width); the kernel reaches 3 sigma.
    The kernel sums to 1, so blurring normalised images equals normalising blurred ones.
    """
    sigma = BLUR_SIGMA * images.shape[-1] if sigma is None else float(sigma)
    radius = min(math.ceil(3 * sigma), min(images.shape[-2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def removal_values(images: torch.Tensor, removal: str, normalization: Normalization) -> torch.Tensor:
    """What removed pixels of the (normalised) ``images`` become: ``[1, C, 1, 1]`` black or ``[N, C, H, W]`` blur."""
    if removal == "black":
        return _black(normalization, images.shape[1], images)
    if removal == "blur":
        return blurred(images)
    raise ProbeValueError(f"unknown removal {removal!r}; valid: {', '.join(REMOVALS)}")


def perturbation_hits(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | int | Sequence[int],
    *,
    normalization: Normalization,
    modes: Sequence[str] = MODES,
    fractions: Sequence[float] = STEPS,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    removal: str = "black",
    clean: torch.Tensor | None = None,
) -> dict[str, PerturbationCurve]:
    """Run the perturbation test for each of ``modes`` and return one curve per mode.

    ``images`` are preprocessed (normalised with ``normalization``; :data:`backbones.preprocessing.RAW`
    for [0, 1] input) ``[N, C, H, W]``; ``maps [N, H, W]`` rank their pixels; ``target [N]`` is the class
    whose survival is tracked (the explained pseudo-class, or the label in the paper's
    benchmark). The clean image (fraction 0) is classified once and shared by the modes.
    Removed pixels become ``removal`` (:data:`REMOVALS`: black, the published protocol, or blur).
    Work is done in chunks of ``batch_size`` images on ``device`` (default: the model's), in
    channels-last layout (faster convolutions on CPU and GPU; the same predictions up to rounding).
    The model runs in inference behaviour (every module in eval mode, its own flags restored after),
    so the result does not depend on the mode the caller left it in, nor on ``batch_size``.
    ``clean [N]`` (bool), when the caller already classified the clean images (the pipeline's
    targets are their top-1 predictions), replaces the clean forward pass.
    """
    maps = check_maps(maps)
    if images.dim() != 4 or images.shape[0] != maps.shape[0] or tuple(images.shape[2:]) != tuple(maps.shape[1:]):
        raise ProbeValueError(
            f"images {tuple(images.shape)} do not match maps {tuple(maps.shape)} ([N, C, H, W] vs [N, H, W])"
        )
    for mode in modes:
        if mode not in MODES:
            raise ProbeValueError(f"unknown perturbation mode {mode!r}; valid: {', '.join(MODES)}")
    if batch_size < 1:
        raise ProbeValueError(f"batch_size must be >= 1, got {batch_size}")
    fractions = tuple(float(f) for f in fractions)
    n = images.shape[0]
    targets = check_targets(target, n)
    if clean is not None and tuple(clean.shape) != (n,):
        raise ProbeValueError(f"clean must hold one flag per image, [{n}], got {tuple(clean.shape)}")
    device = torch.device(device) if device is not None else model_device(model)
    num_pixels = maps.shape[1] * maps.shape[2]
    ks = torch.tensor([pixels_removed(f, num_pixels) for f in fractions], device=device)
    hits = {mode: torch.zeros(n, len(fractions), dtype=torch.bool) for mode in modes}
    starts = range(0, n, batch_size)
    with inference_mode(model):
        for start in progress(starts, desc="perturbation", total=len(starts), unit="batch"):
            chunk = slice(start, start + batch_size)
            x = to_device(images[chunk], device).contiguous(memory_format=torch.channels_last)
            t = to_device(targets[chunk], device)
            fill = removal_values(x, removal, normalization)
            chunk_maps = to_device(maps[chunk], device)
            survived = clean[chunk].cpu() if clean is not None else (model(x).argmax(dim=1) == t).cpu()
            for mode in modes:
                ranks = removal_ranks(chunk_maps, mode).reshape(x.shape[0], 1, *x.shape[2:])
                for j, k in enumerate(ks.tolist()):
                    if k == 0:
                        hits[mode][chunk, j] = survived
                        continue
                    perturbed = torch.where(ranks < k, fill, x).contiguous(memory_format=torch.channels_last)
                    hits[mode][chunk, j] = (model(perturbed).argmax(dim=1) == t).cpu()
    return {mode: PerturbationCurve(mode, fractions, hits[mode]) for mode in modes}


def faithfulness(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor | int | Sequence[int],
    *,
    normalization: Normalization,
    fractions: Sequence[float] = STEPS,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    removal: str = "black",
    clean: torch.Tensor | None = None,
) -> FaithfulnessResult:
    """Positive and negative perturbation of ``maps`` on ``model`` (see :func:`perturbation_hits`)."""
    curves = perturbation_hits(
        model,
        images,
        maps,
        target,
        normalization=normalization,
        fractions=fractions,
        batch_size=batch_size,
        device=device,
        removal=removal,
        clean=clean,
    )
    return FaithfulnessResult(positive=curves["positive"], negative=curves["negative"])
