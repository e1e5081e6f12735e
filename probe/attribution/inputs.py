"""What ``explain`` receives, checked and prepared the same way for every method: the images,
the class targets (or a rank), and the model's device, dtype and inference mode."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from numbers import Integral
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from probe.errors import ProbeTypeError, ProbeValueError

from .method import ModelFacts

_FLOATS = (torch.float32, torch.float64)


def check_images(images: Any, facts: ModelFacts) -> None:
    """Raise a ProbeError unless ``images`` is a finite, non-empty float [N, C, H, W] batch the model can read."""
    if not isinstance(images, torch.Tensor):
        raise ProbeTypeError(f"images must be a torch.Tensor [N, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        hint = " (a single image? add a batch dimension: images[None])" if images.dim() == 3 else ""
        raise ProbeValueError(f"images must be 4-D [N, C, H, W], got shape {tuple(images.shape)}{hint}")
    if images.dtype not in _FLOATS:
        raise ProbeTypeError(f"images must be float32 or float64 (normalised as the model expects), got {images.dtype}")
    if images.shape[0] == 0:
        raise ProbeValueError("images is an empty batch (N = 0); pass at least one image")
    if facts.in_channels is not None and facts.in_channels != images.shape[1]:
        raise ProbeValueError(
            f"images have {images.shape[1]} channels but the model's {facts.first_layer} expects {facts.in_channels}"
        )
    if not torch.isfinite(images).all():
        raise ProbeValueError("images contain NaN or infinite values")


def explicit_targets(target: Any, rank: Any, n: int, num_classes: int | None) -> torch.Tensor | None:
    """The class of every image when it does not depend on the logits, else None (top-k by ``rank``).

    ``num_classes`` may be None only when neither ``target`` nor ``rank`` is given.
    """
    if target is not None and rank is not None:
        raise ProbeValueError("give either target or rank, not both")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, Integral):
            raise ProbeTypeError(f"rank must be an int, got {type(rank).__name__}")
        assert num_classes is not None
        if not 0 <= int(rank) < num_classes:
            raise ProbeValueError(
                f"rank must be in [0, {num_classes - 1}] (the model has {num_classes} classes), got {rank}"
            )
        return None
    if target is None:
        return None
    if isinstance(target, bool):
        raise ProbeTypeError("target must be an int class id or a sequence of them, got a bool")
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target)
    if isinstance(target, Integral):
        ids = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, torch.Tensor):
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise ProbeTypeError(f"target tensor must hold integer class ids, got {target.dtype}")
        ids = target.detach().to("cpu", torch.long).reshape(-1)
        if target.dim() == 0:
            ids = ids.expand(n)
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        if not all(isinstance(t, Integral) and not isinstance(t, bool) for t in target):
            raise ProbeTypeError("target sequence must hold int class ids")
        ids = torch.tensor([int(t) for t in target], dtype=torch.long)
    else:
        raise ProbeTypeError(f"target must be None, an int, or a sequence/tensor of ints, got {type(target).__name__}")
    if ids.numel() != n:
        raise ProbeValueError(f"target has {ids.numel()} class ids but there are {n} images")
    assert num_classes is not None
    bad = ids[(ids < 0) | (ids >= num_classes)]
    if bad.numel():
        raise ProbeValueError(f"target class {int(bad[0])} is outside the model's classes [0, {num_classes - 1}]")
    return ids


def ranked_targets(logits: torch.Tensor, rank: int) -> torch.Tensor:
    """Each row's ``rank``-th highest class (0 = top-1), [N] int64."""
    return logits.topk(rank + 1, dim=1).indices[:, rank]


@contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode for the duration; each module's own train/eval flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def model_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class scores [N, classes] of one forward pass in inference mode, without gradients."""
    with inference_mode(model), torch.no_grad():
        logits = model(images.to(model_dtype(model, images.dtype)))
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ProbeValueError(f"the model must return class scores [N, classes], got {shape}")
    return logits


def model_dtype(model: nn.Module, fallback: torch.dtype) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (``fallback`` for none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return fallback
