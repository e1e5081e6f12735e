"""The published code's small numeric helpers, reproduced exactly (docs/ATTRIBUTION.md#numeric-helpers)."""

from __future__ import annotations

import torch

EPS = 1e-9


def sdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / (b + 1e-9), and exactly 0 where b == 0 (the published ``safe_divide``; no sign-symmetric epsilon)."""
    return (a / (b + EPS)).masked_fill_(b == 0, 0)


def div_eps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / (b + 1e-9): equals ``sdiv`` wherever a == 0 where b == 0, or where the caller multiplies
    the result by a factor that is zero wherever b == 0 (each call site says which). Half the passes."""
    return a / (b + EPS)


def max_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Per-sample maximum over every non-batch dim (the signed max, not max-|x|), keepdim."""
    return x.flatten(1).amax(1).view((-1,) + (1,) * (x.dim() - 1))


def per_sample_sum(x: torch.Tensor) -> torch.Tensor:
    """Per-sample sum over every non-batch dim, keepdim."""
    return x.flatten(1).sum(1).view((-1,) + (1,) * (x.dim() - 1))


def delta_shift(c: torch.Tensor, r: torch.Tensor, off_support: torch.Tensor) -> torch.Tensor:
    """C + r - mean_support(r) on C's support (``off_support`` = the bool mask C == 0); keeps sum(C).

    ``r`` must already be zero off the support. Works in place on ``c``. A sample with an empty
    support (all of C zero) gets no shift, where the published code would produce 0/0 = NaN.
    """
    count = (c[0].numel() - torch.count_nonzero(off_support.flatten(1), dim=1)).clamp(min=1)
    shift = per_sample_sum(r) / count.to(c.dtype).view((-1,) + (1,) * (c.dim() - 1))
    return c.add_(r).sub_(shift).masked_fill_(off_support, 0)
