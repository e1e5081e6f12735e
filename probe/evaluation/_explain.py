"""The explainer hook used by the metrics that must compute maps themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from probe.attribution import inference_mode
from probe.devices import to_device
from probe.errors import ProbeValueError

from ._tensors import check_maps, check_targets, progress

#: ``explain_fn(model, images [N, C, H, W], target [N]) -> maps [N, H, W]``
ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def explainer(method: str = "agf", **options) -> ExplainFn:
    """An :data:`ExplainFn` that calls ``probe.explain(model, images, target, method=method, **options)``."""

    def explain(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from probe import explain as probe_explain

        return probe_explain(model, images, target, method=method, **options)

    return explain


def explain_in_batches(
    explain_fn: ExplainFn,
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor | int | Sequence[int],
    *,
    batch_size: int,
    device: str | torch.device,
    desc: str | None = None,
) -> torch.Tensor:
    """Maps ``[N, H, W]`` (CPU, float32) from ``explain_fn`` run on chunks of ``batch_size`` images on ``device``;
    with ``desc``, a progress bar of that name counts the chunks. The model is in inference behaviour
    meanwhile (every module in eval mode, restored after), whatever mode the caller left it in."""
    if batch_size < 1:
        raise ProbeValueError(f"batch_size must be >= 1, got {batch_size}")
    targets = check_targets(target, images.shape[0])
    chunks = []
    starts = range(0, images.shape[0], batch_size)
    with inference_mode(model):
        for start in starts if desc is None else progress(starts, desc=desc, total=len(starts), unit="batch"):
            x = to_device(images[start : start + batch_size], device)
            maps = check_maps(
                explain_fn(model, x, to_device(targets[start : start + batch_size], device)), "explain_fn output"
            )
            if maps.shape[0] != x.shape[0] or tuple(maps.shape[1:]) != tuple(x.shape[2:]):
                raise ProbeValueError(f"explain_fn returned maps {tuple(maps.shape)} for images {tuple(x.shape)}")
            chunks.append(maps.float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, *images.shape[2:])
