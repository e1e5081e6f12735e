"""Independent re-statements of what the ViT families' own code computes, for comparing loaded backbones.

Written from the published descriptions (fixture README section 7, docs/BACKBONES.md), not from the
loaders: the position-embedding resampling is spelled out as explicit bicubic weight matrices, the
token sequences are assembled by hand, and only timm's standard blocks and norms are reused.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn


def _cubic(distance: float, a: float) -> float:
    """Keys' cubic convolution kernel with parameter ``a``."""
    d = abs(distance)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    if d < 2:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return 0.0


def bicubic_matrix(n_in: int, n_out: int, ratio: float) -> np.ndarray:
    """Plain bicubic (a = -0.75, borders clamped): output i samples the input at (i + 0.5) * ratio - 0.5."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * ratio - 0.5
        base = math.floor(src)
        for k in range(-1, 3):
            weights[i, min(max(base + k, 0), n_in - 1)] += _cubic(k - (src - base), -0.75)
    return weights


def antialiased_bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Antialiased bicubic (a = -0.5, kernel stretched by the downsampling factor, rows normalised)."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - 2 * stretch + 0.5), 0), min(int(center + 2 * stretch + 0.5), n_in)
        row = np.array([_cubic((j - center + 0.5) / stretch, -0.5) for j in range(lo, hi)])
        weights[i, lo:hi] = row / row.sum()
    return weights


def dinov2_patch_positions(patch_pos: torch.Tensor, side: int, *, registers: bool) -> torch.Tensor:
    """DINOv2's resampling of [1, M*M, D] patch position embeddings to a side x side grid.

    Without registers: scale factor (side + 0.1) / M, so output i samples (i + 0.5) * M / (side + 0.1) - 0.5;
    with registers: the output size is given and the kernel is antialiased.
    """
    stored = math.isqrt(patch_pos.shape[1])
    if registers:
        rows = antialiased_bicubic_matrix(stored, side)
    else:
        rows = bicubic_matrix(stored, side, stored / (side + 0.1))
    grid = patch_pos[0].double().reshape(stored, stored, -1).numpy()
    out = np.einsum("ij,jkd,lk->ild", rows, grid, rows)
    return torch.from_numpy(out).reshape(1, side * side, -1).to(patch_pos.dtype)


def dinov2_features(reference: nn.Module, sd: dict, x: torch.Tensor) -> torch.Tensor:
    """DINOv2's forward (class token after the final norm) at x's size, from its own state dict ``sd``.

    ``reference`` supplies the patch convolution, blocks and final norm that ``sd`` was written from.
    """
    patch = sd["patch_embed.proj.weight"].shape[-1]
    side = x.shape[-1] // patch
    pos = sd["pos_embed"]
    registers = sd.get("register_tokens")
    resampled = dinov2_patch_positions(pos[:, 1:], side, registers=registers is not None)
    with torch.no_grad():
        tokens = reference.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([sd["cls_token"].expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + torch.cat([pos[:, :1], resampled], dim=1)
        if registers is not None:  # after the position embeddings, right behind the class token
            tokens = torch.cat([tokens[:, :1], registers.expand(len(x), -1, -1), tokens[:, 1:]], dim=1)
        for block in reference.blocks:
            tokens = block(tokens)
        return reference.norm(tokens)[:, 0]


def timm_vit_features(reference: nn.Module, x: torch.Tensor, *, mean_pool: bool) -> torch.Tensor:
    """MAE/iBOT/DINO forward: class token + position embeddings, blocks, then the final norm's class token,
    or (MAE global pool, iBOT mean pooling) fc_norm of the mean patch token."""
    with torch.no_grad():
        tokens = reference.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([reference.cls_token.expand(len(x), -1, -1), tokens], dim=1) + reference.pos_embed
        for block in reference.blocks:
            tokens = block(tokens)
        if mean_pool:
            return reference.fc_norm(tokens[:, 1:].mean(dim=1))
        return reference.norm(tokens)[:, 0]


def jitter(model: nn.Module, seed: int, scale: float = 0.1) -> nn.Module:
    """Add seeded noise to every parameter, so LayerNorms, LayerScales and zero-initialised biases matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()
