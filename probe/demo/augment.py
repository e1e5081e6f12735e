"""Batched view augmentation in torch: random resized (rotated) crop, flip, colour jitter, greyscale, invert, noise.

Every random parameter is drawn per image from one ``torch.Generator`` on the CPU, so a seed
gives the same views on any device; the pixel work runs where the images are (CPU or CUDA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ; a hue shift is a rotation of the (I, Q) plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the view augmentations (a SimCLR-style pipeline)."""

    size: int = 32  # output side in pixels
    scale: tuple[float, float] = (0.15, 0.4)  # crop area as a fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio
    flip_p: float = 0.5
    rotate: float = 180.0  # crops are rotated by an angle uniform in [-rotate, rotate] degrees
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.5)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.9
    grey_p: float = 0.3
    invert_p: float = 0.3
    noise: float = 0.05  # Gaussian pixel noise with a std uniform in [0, noise]
    background_swap: float = 0.0  # probability that a view's objects are pasted over a fresh background


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def crop_grid(n: int, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Affine matrices [n, 2, 3] of random resized, rotated, flipped crops in normalised coordinates.

    A rotated crop that would reach outside the image is shrunk until it fits.
    """
    area = _uniform(n, *cfg.scale, gen)
    log_ratio = _uniform(n, math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), gen)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    angle = _uniform(n, -cfg.rotate, cfg.rotate, gen) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    ext_x = w * cos.abs() + h * sin.abs()
    ext_y = w * sin.abs() + h * cos.abs()
    shrink = torch.maximum(ext_x, ext_y).clamp(min=1.0)
    w, h, ext_x, ext_y = w / shrink, h / shrink, ext_x / shrink, ext_y / shrink
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - ext_x)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - ext_y)
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * w * flip, -sin * h
    theta[:, 1, 0], theta[:, 1, 1] = sin * w * flip, cos * h
    theta[:, 0, 2], theta[:, 1, 2] = cx, cy
    return theta


def colour_jitter(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter (applied with probability ``jitter_p``), then grey and invert."""
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    b, c, s, h = cfg.jitter
    on = (torch.rand(n, generator=gen) < cfg.jitter_p).float()

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(n, max(0.0, 1 - strength), 1 + strength, gen)
        return (1 + on * (f - 1)).to(dev, dt).view(n, 1, 1, 1)

    fb, fc, fs = factor(b), factor(c), factor(s)
    angle = (_uniform(n, -h, h, gen) * 2 * math.pi * on).to(dt)
    grey = (torch.rand(n, generator=gen) < cfg.grey_p).to(dev).view(n, 1, 1, 1)
    invert = (torch.rand(n, generator=gen) < cfg.invert_p).to(dev).view(n, 1, 1, 1)

    x = (x * fb).clamp(0, 1)
    mean = _luma(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * fc + mean).clamp(0, 1)
    y = _luma(x)
    x = ((x - y) * fs + y).clamp(0, 1)
    rot = torch.zeros(n, 3, 3, dtype=dt)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(angle), -torch.sin(angle)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(angle), torch.cos(angle)
    yiq = _YIQ.to(dt)
    hue = (torch.linalg.inv(yiq) @ rot @ yiq).to(dev)
    x = torch.einsum("nij,njhw->nihw", hue, x).clamp(0, 1)
    x = torch.where(grey, _luma(x).expand_as(x), x)
    return torch.where(invert, 1 - x, x)


def swap_backgrounds(
    images: torch.Tensor, masks: torch.Tensor, backgrounds: torch.Tensor, p: float, gen: torch.Generator
) -> torch.Tensor:
    """With probability ``p`` per image, keep its object pixels (``masks`` > 0) and replace the rest by a random
    background from ``backgrounds``, so two views of one image share their objects but not their background."""
    n = images.shape[0]
    pick = torch.randint(backgrounds.shape[0], (n,), generator=gen)
    on = (torch.rand(n, generator=gen) < p).to(images.device).view(n, 1, 1, 1)
    keep = (masks > 0).unsqueeze(1) | ~on
    return torch.where(keep, images, backgrounds[pick].to(images.device))


def make_views(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """One augmented view per image: uint8 or float [N, 3, H, W] -> float [N, 3, size, size] in [0, 1]."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    theta = crop_grid(x.shape[0], cfg, gen).to(x.device, x.dtype)
    grid = F.affine_grid(theta, [x.shape[0], 3, cfg.size, cfg.size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = colour_jitter(x, cfg, gen)
    if cfg.noise > 0:
        std = (torch.rand(x.shape[0], generator=gen) * cfg.noise).to(x.device, x.dtype).view(-1, 1, 1, 1)
        noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
        x = (x + std * noise).clamp(0, 1)
    return x
