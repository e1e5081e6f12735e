"""AGF's attribution-guided factorization (docs/ATTRIBUTION.md#factorisation): one spatial map per
sample from a feature map.

The ridge least-squares problem is 2×2 per sample, so it is solved in closed form, on the
input's device and dtype (the published code hard-codes a CUDA float32 identity matrix).
"""

from __future__ import annotations

import torch

from .numerics import max_per_sample, sdiv


def regions(phi: torch.Tensor) -> torch.Tensor:
    """Indicator columns [negative, positive] of the attribution map ``phi`` [N,1,H,W] -> [N, H*W, 2]."""
    flat = phi.flatten(1)
    return torch.stack((flat < 0, flat > 0), dim=2).to(phi.dtype)


def factorize(values: torch.Tensor, region_columns: torch.Tensor) -> torch.Tensor:
    """ReLU(W_pos - W_neg) [N,1,H,W] for ``values`` [N,C,H,W] and ``regions(phi)``
    (docs/ATTRIBUTION.md#factorisation, and #full-conv-rule step 4).

    Soft-Heaviside of the per-sample max-normalised values, per-channel representatives of the
    negative and positive regions, ridge (lambda = 1) weights clipped at zero.
    """
    n, c, h, w = values.shape
    scale = sdiv(torch.full_like(max_per_sample(values), 10.0), max_per_sample(values))
    heav = torch.sigmoid_(values * scale).view(n, c, h * w)
    counts = region_columns.sum(1, keepdim=True)  # [N,1,2]
    reps = sdiv(torch.bmm(heav, region_columns), counts)  # [N,C,2]: columns r-, r+
    proj = torch.bmm(reps.transpose(1, 2), heav)  # [N,2,HW] = Rep^T H
    del heav
    gram = torch.bmm(reps.transpose(1, 2), reps)  # [N,2,2]
    a = gram[:, 0, 0, None] + 1
    b = gram[:, 0, 1, None]
    d = gram[:, 1, 1, None] + 1
    det = a * d - b * b
    w_neg = ((d * proj[:, 0] - b * proj[:, 1]) / det).clamp_(min=0)
    w_pos = ((a * proj[:, 1] - b * proj[:, 0]) / det).clamp_(min=0)
    return (w_pos - w_neg).clamp_(min=0).view(n, 1, h, w)
