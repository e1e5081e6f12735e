"""Input checks and small batched tensor statistics shared by the metrics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import torch

from probe.errors import ProbeTypeError, ProbeValueError
from probe.progress import progress_enabled

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr, unless ``PROBE_NO_PROGRESS`` turns progress off."""
    if not progress_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)


def check_maps(maps: torch.Tensor, name: str = "maps") -> torch.Tensor:
    """Return ``maps`` as a finite floating tensor ``[N, H, W]``; a clear error otherwise."""
    if not isinstance(maps, torch.Tensor):
        raise ProbeTypeError(f"{name} must be a torch.Tensor [N, H, W], got {type(maps).__name__}")
    if maps.dim() != 3:
        raise ProbeValueError(f"{name} must have shape [N, H, W], got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        maps = maps.float()
    finite = torch.isfinite(maps).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:5].tolist()
        more = ", …" if int((~finite).sum()) > 5 else ""
        raise ProbeValueError(f"{name} contain NaN or infinite values (images {bad}{more})")
    return maps.detach()


def check_mask_batch(masks: torch.Tensor, name: str = "masks") -> torch.Tensor:
    """Return ``masks`` as a bool tensor ``[N, H, W]`` (nonzero = object); a clear error otherwise."""
    if not isinstance(masks, torch.Tensor):
        raise ProbeTypeError(f"{name} must be a torch.Tensor [N, H, W], got {type(masks).__name__}")
    if masks.dim() != 3:
        raise ProbeValueError(f"{name} must have shape [N, H, W], got {tuple(masks.shape)}")
    return masks.detach() != 0


def check_masks(masks: torch.Tensor, maps: torch.Tensor, name: str = "masks") -> torch.Tensor:
    """Return ``masks`` as a bool tensor of the same shape and device as ``maps``."""
    masks = check_mask_batch(masks, name)
    if tuple(masks.shape) != tuple(maps.shape):
        raise ProbeValueError(f"{name} has shape {tuple(masks.shape)} but the maps have {tuple(maps.shape)}")
    return masks.to(maps.device)


def check_targets(target: torch.Tensor | int | Sequence[int], n: int, name: str = "target") -> torch.Tensor:
    """Return ``target`` as a long tensor ``[n]`` on the CPU (an int is broadcast)."""
    t = torch.as_tensor(target, dtype=torch.long).detach().cpu().reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ProbeValueError(f"{name} has {t.numel()} entries for {n} images")
    return t


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..M along the last dim of ``x [N, M]``, ties sharing their average rank (as scipy's rankdata)."""
    n, m = x.shape
    values, order = torch.sort(x, dim=1, stable=True)
    new_group = torch.ones_like(values, dtype=torch.bool)
    new_group[:, 1:] = values[:, 1:] != values[:, :-1]
    group = torch.cumsum(new_group.long(), dim=1) - 1 + torch.arange(n, device=x.device).unsqueeze(1) * m
    positions = torch.arange(1, m + 1, device=x.device, dtype=torch.float64).expand(n, m)
    flat_group = group.reshape(-1)
    zeros = torch.zeros(n * m, device=x.device, dtype=torch.float64)
    total = zeros.clone().index_add_(0, flat_group, positions.reshape(-1))
    count = zeros.index_add_(0, flat_group, torch.ones_like(zeros))
    mean_rank = (total / count.clamp(min=1))[group]
    ranks = torch.empty_like(mean_rank)
    ranks.scatter_(1, order, mean_rank)
    return ranks


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row pair of ``a, b [N, M]`` (float64); NaN where a row is constant."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    denom = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / denom
    return torch.where(denom > 0, r.clamp(-1.0, 1.0), torch.full_like(r, float("nan")))


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row pair (Pearson of tie-averaged ranks); NaN for constant rows."""
    return pearson_rows(average_ranks(a), average_ranks(b))


def nanmean(values: torch.Tensor | Iterable[float]) -> float | None:
    """Mean of the finite entries, or ``None`` when there are none."""
    t = torch.as_tensor(values if isinstance(values, torch.Tensor) else list(values), dtype=torch.float64)
    t = t[torch.isfinite(t)]
    return float(t.mean()) if t.numel() else None


def per_class_mean(values: torch.Tensor, classes: torch.Tensor, k: int) -> list[float | None]:
    """``nanmean`` of ``values [N]`` within each class id 0..k-1 of ``classes [N]`` (``None`` if empty)."""
    values = torch.as_tensor(values).detach().cpu().double().reshape(-1)
    classes = torch.as_tensor(classes).detach().cpu().long().reshape(-1)
    if values.numel() != classes.numel():
        raise ProbeValueError(f"per_class_mean: {values.numel()} values for {classes.numel()} class ids")
    return [nanmean(values[classes == c]) for c in range(k)]
