"""Tiny models and an honest explainer for the metric tests (their effect on pixels is known)."""

from __future__ import annotations

import torch
import torch.nn as nn


class RegionModel(nn.Module):
    """Two logits: [mean input (over channels) inside ``region`` − ``offset``, ``margin``].

    Class 0 is predicted while the region's mean stays above ``offset + margin``; so the effect
    of blacking out pixels depends only on how many pixels of the region are gone.
    """

    def __init__(self, region: torch.Tensor, offset: float = 0.0, margin: float = 1e-3) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.offset = offset
        self.margin = margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x.mean(dim=1) * self.region).sum(dim=(1, 2)) / self.region.sum() - self.offset
        return torch.stack([score, torch.full_like(score, self.margin)], dim=1)


class HalvesModel(nn.Module):
    """Class 0 = total input in the left half, class 1 = total input in the right half (linear)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        s = x.sum(dim=1)
        return torch.stack([s[..., :half].sum(dim=(1, 2)), s[..., half:].sum(dim=(1, 2))], dim=1)


def small_cnn(seed: int = 0, classes: int = 3) -> nn.Module:
    """A seeded small CNN ending in a Linear layer."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * 16, classes),
    ).eval()


def input_x_gradient(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Input × gradient of the target logit, summed over channels: an honest (if simple) explainer."""
    x = images.detach().clone().requires_grad_(True)
    selected = model(x).gather(1, target.reshape(-1, 1)).sum()
    (grad,) = torch.autograd.grad(selected, x)
    return (x * grad).sum(dim=1).detach()


def gradient_of_total(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of the SUM of all logits (ignores the target): a class-insensitive saliency map."""
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    return (x * grad).sum(dim=1).detach()
