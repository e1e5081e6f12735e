"""How precisely a mean over images is known, and the rule that stops adding images to an evaluation.

The pipeline evaluates its images in rounds and stops once the primary method's perturbation
gap is known well enough (:func:`precise_enough`). The interval is a normal approximation of
the mean's 95% interval, the one place to swap for another interval.
"""

from __future__ import annotations

import math

import torch

#: The two-sided 95% quantile of the standard normal distribution.
Z95 = 1.959963984540054


def mean_halfwidth(values: torch.Tensor) -> float:
    """Half-width of the 95% interval of the mean of ``values`` [N] (normal approximation, sample standard
    deviation); infinite with fewer than two finite values."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    v = v[torch.isfinite(v)]
    if v.numel() < 2:
        return math.inf
    return Z95 * float(v.std(unbiased=True)) / math.sqrt(v.numel())


def precise_enough(values: torch.Tensor, precision: float) -> bool:
    """The stopping rule: True when the mean of ``values`` is known within ``± precision`` (95%);
    ``precision`` 0 never stops (every image is evaluated)."""
    return precision > 0 and mean_halfwidth(values) <= precision
