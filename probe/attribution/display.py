"""Display normalisation of attribution maps for overlays (the maps from ``explain`` stay raw)."""

from __future__ import annotations

import torch

from probe.errors import ProbeValueError

MODES = ("minmax", "positive", "symmetric")


def normalize_map(maps: torch.Tensor, mode: str = "minmax") -> torch.Tensor:
    """Scale each map of [N, H, W] (or one [H, W] map) for display, per map.

    ``"minmax"``: to [0, 1]. ``"positive"``: negative values clipped to 0, then divided by the
    maximum, in [0, 1]. ``"symmetric"``: divided by the maximum |value|, in [-1, 1]. A constant
    map becomes all zeros.
    """
    if mode not in MODES:
        raise ProbeValueError(f"unknown normalisation {mode!r}; choose one of {', '.join(MODES)}")
    if maps.dim() not in (2, 3):
        raise ProbeValueError(f"maps must be [N, H, W] or [H, W], got shape {tuple(maps.shape)}")
    flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]).float()
    if mode == "minmax":
        low = flat.amin(1, keepdim=True)
        flat, span = flat - low, flat.amax(1, keepdim=True) - low
    elif mode == "positive":
        flat = flat.clamp(min=0)
        span = flat.amax(1, keepdim=True)
    else:
        span = flat.abs().amax(1, keepdim=True)
    out = torch.where(span > 0, flat / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(flat))
    return out.reshape(maps.shape)
